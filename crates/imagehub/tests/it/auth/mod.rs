//! Accounts, organizations, permissions and Docker token auth over real HTTP.

mod accounts_api;
mod audit;
mod credentials;
pub mod common;
mod external;
mod hidden;
mod matrix;
mod tokens;
