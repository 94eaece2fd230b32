//! The one integration-test binary: every test starts a real imagehub server on an
//! ephemeral port (`imagehub_testkit::TestServer`) and talks to it over HTTP or drives
//! real clients against it.

mod realclients;
mod v2;
