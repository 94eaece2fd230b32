//! Accounts, organizations, permissions and Docker token auth over real HTTP.

mod accounts_api;
mod audit;
mod credentials;
mod external;
mod hidden;
mod matrix;
mod tokens;
