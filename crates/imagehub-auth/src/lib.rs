//! Who may do what, without a database or an HTTP server: password hashing, access-token
//! secrets, `repository:name:pull,push` scopes, the permission policy (roles and
//! visibility), the registry's signed JWTs with their JWKS, `WWW-Authenticate`
//! challenges, and htpasswd files.
//!
//! The metadata crate stores accounts; core applies this policy to them; the server
//! reads credentials off requests. Everything here is a pure function of its inputs
//! (plus the signing key), so it is tested without I/O.

mod actions;
mod challenge;
pub mod htpasswd;
mod password;
mod policy;
mod scope;
mod secret;
mod token;

pub use actions::{Action, Actions};
pub use challenge::Challenge;
pub use password::{
    PasswordError, generate_password, hash_password, verify_password, verify_password_of_nobody,
};
pub use policy::{Role, Standing, TokenLimits, Visibility, repository_actions};
pub use scope::{Scope, ScopeError, parse_scopes};
pub use secret::{ACCESS_TOKEN_PREFIX, AccessTokenSecret};
pub use token::{AccessEntry, Claims, Grantee, SigningKey, TokenError, TokenUse, write_private};
