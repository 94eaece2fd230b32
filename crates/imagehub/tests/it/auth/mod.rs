//! Accounts, organizations, permissions and Docker token auth over real HTTP.

mod common;
mod external;
mod matrix;
mod tokens;
