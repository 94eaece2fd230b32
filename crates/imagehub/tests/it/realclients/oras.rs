//! oras-py: push an artifact, push a referrer (`subject`) to it, pull it back and discover
//! the referrer with the referrers API. The checks are in `oras_check.py`.

use imagehub_testkit::TestServer;

use super::Clients;

#[test]
fn oras_push_referrer_pull_discover() {
    let server = TestServer::start();
    let c = Clients::new(&server.host());

    let probe = c.command("python3").args(["-c", "import oras.client"]).output();
    assert!(
        probe.is_ok_and(|out| out.status.success()),
        "oras-py (Python module `oras`) is not installed: run `scripts/test.sh`, which installs it with pip"
    );

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/realclients/oras_check.py");
    let out = c.run("python3", &[script, c.host(), "oras/artifact", &c.path("oras")]);
    assert!(out.stdout_str().starts_with("ok "), "oras_check.py printed: {}", out.stdout_str());
}
