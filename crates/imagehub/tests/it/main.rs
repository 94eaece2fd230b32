//! The one integration-test binary: every test starts a real imagehub server on an
//! ephemeral port (`imagehub_testkit::TestServer`, or the binary as a process) and talks
//! to it over HTTP or drives real clients against it.

mod auth;
mod bombs;
mod browser;
mod browser_manage;
mod build;
mod cli;
mod cli_hostile;
mod client;
mod connections;
mod deploy;
mod floods;
mod gc;
mod hub;
mod hub_api;
mod hub_open;
mod imports;
mod openapi;
mod process;
mod realclients;
mod replicas;
mod restart;
mod s3;
mod search;
mod support;
mod sync;
mod tls;
mod v2;
mod web;
mod web_edit;
mod web_imports;
mod web_orgs;
mod web_settings;
