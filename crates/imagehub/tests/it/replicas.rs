//! Several `imagehub serve` processes as replicas of one hub (issue 18): what they must
//! share to be interchangeable behind a load balancer.

use reqwest::Method;

use crate::process::ServerProcess;
use crate::support::hub::{Cred, Hub, repo_scope};
use crate::support::registry::{
    OCI_INDEX, OCI_MANIFEST, Registry, image_config, image_manifest, location_path, random_bytes,
    sha256_digest, string_list,
};
use crate::support::s3::S3Server;

/// Replicas given one `auth.signing_key_file` sign with one key: each publishes the same
/// key set, and a token from one is accepted by another; a hub with its own key refuses
/// it. (The first replica to start creates the file; the others read it.)
#[tokio::test]
async fn replicas_sharing_a_signing_key_accept_each_others_tokens() {
    let keys = tempfile::tempdir().expect("keys");
    let shared = keys.path().join("signing-key.pem");
    let start = |key: Option<std::path::PathBuf>| {
        Hub::start_with(move |c| {
            if let Some(key) = key {
                c.auth.signing_key_file = Some(key);
            }
        })
    };
    let (one, two, other) = (start(Some(shared.clone())), start(Some(shared.clone())), start(None));
    assert!(shared.is_file(), "created by the first replica");
    let jwks = |hub: &Hub| {
        let url = hub.url("/.well-known/jwks.json");
        async move {
            reqwest::get(url).await.expect("jwks").json::<serde_json::Value>().await.expect("JSON")
        }
    };
    assert_eq!(jwks(&one).await, jwks(&two).await, "one key set");
    assert_ne!(jwks(&one).await, jwks(&other).await);

    // The same public repository on each (their databases are not shared here).
    for hub in [&one, &two, &other] {
        let olga = hub.olga_with_public_acme().await;
        hub.push_with_readme(&olga, "acme/app", "v1", "").await;
    }
    let token =
        one.token(&Cred::Anonymous, &[repo_scope("acme/app", "pull")]).await.expect("token");
    let path = "/v2/acme/app/manifests/v1";
    two.send(two.v2(Method::GET, path, Some(&token))).await.expect_status(200, "replica two");
    let refused = other.send(other.v2(Method::GET, path, Some(&token))).await;
    refused.expect_status(401, "a hub with another key");
}

/// The shared backends of a two-replica test: a fresh PostgreSQL database on the suite's
/// server and a fresh S3 server. `None` in the SQLite pass of the suite: these tests run
/// in its PostgreSQL and S3 pass (`scripts/test.sh` runs both).
struct Shared {
    database: String,
    s3: S3Server,
    _database_home: tempfile::TempDir,
}

impl Shared {
    fn start() -> Option<Shared> {
        let home = tempfile::tempdir().expect("a home for the database's name");
        let database = imagehub_testkit::backend::metadata_url(home.path())?;
        Some(Shared { database, s3: S3Server::start(), _database_home: home })
    }

    /// A replica with accounts over the shared backends, signing tokens with `key`.
    fn hub(&self, key: &std::path::Path) -> Hub {
        let (database, s3, key) = (self.database.clone(), self.s3.config(), key.to_path_buf());
        Hub::start_with(move |c| {
            c.metadata.url = database;
            c.storage.s3 = Some(s3);
            c.auth.signing_key_file = Some(key);
        })
    }

    /// The environment of an `imagehub serve` replica over the shared backends.
    fn env(&self) -> Vec<(&'static str, String)> {
        let s3 = &self.s3.settings;
        vec![
            ("IMAGEHUB_AUTH__ENABLED", "false".into()),
            ("IMAGEHUB_METADATA__URL", self.database.clone()),
            ("IMAGEHUB_STORAGE__S3__ENDPOINT", s3.endpoint.clone()),
            ("IMAGEHUB_STORAGE__S3__BUCKET", s3.bucket.clone()),
            ("IMAGEHUB_STORAGE__S3__ACCESS_KEY", s3.access_key.clone()),
            ("IMAGEHUB_STORAGE__S3__SECRET_KEY", s3.secret_key.clone()),
            ("IMAGEHUB_STORAGE__S3__PATH_STYLE", "true".into()),
        ]
    }

    /// A replica: its own process and data directory, the shared database and bucket.
    fn replica(&self) -> (ServerProcess, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("the replica's data directory");
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        (ServerProcess::start_with_env(dir.path(), &env), dir)
    }
}

/// Two replicas behind no load balancer at all: every request of one push goes to the
/// other replica than the one before, and each sees at once what the other wrote — the
/// upload session, the blob, the tag, the tag's removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_alternating_between_replicas_push_and_pull() {
    let Some(shared) = Shared::start() else { return };
    let ((one, _d1), (two, _d2)) = (shared.replica(), shared.replica());
    let replicas = [Registry::at(one.url()), Registry::at(two.url())];
    let repo = "acme/app";

    // A chunked upload: opened on one, a chunk on two, the next on one, closed on two.
    let blob = random_bytes(3 * 1024 * 1024 + 17, 7);
    let location = replicas[0].begin_upload(repo).await;
    let half = blob.len() / 2;
    let reply = replicas[1].patch_chunk(&location, 0, &blob[..half]).await;
    reply.expect_status_in(&[202], "first chunk, on the other replica");
    let location = replicas[1].resolve(&reply.location());
    let reply = replicas[0].patch_chunk(&location, half, &blob[half..]).await;
    reply.expect_status_in(&[202], "second chunk, back on the first");
    let location = replicas[0].resolve(&reply.location());
    let digest = sha256_digest(&blob);
    replicas[1].put_upload(&location, &digest, &[]).await.expect_status_in(&[201], "close");

    let config = image_config("replicas");
    replicas[0].push_blob(repo, &config).await;
    let manifest = image_manifest(&config, &[&blob]);
    // The listing is read on one before and after the tag is pushed on two.
    replicas[0].tags_list(repo, None, None).await.expect_status_in(&[200], "tags before");
    replicas[1].push_manifest(repo, "v1", OCI_MANIFEST, &manifest).await;
    for (i, reg) in replicas.iter().enumerate() {
        let tags = reg.tags_list(repo, None, None).await;
        tags.expect_status_in(&[200], "tags");
        assert_eq!(string_list(&tags.json(), "tags"), ["v1"], "listed at once on replica {i}");
        let pulled = reg.get_manifest(repo, "v1").await;
        pulled.expect_status_in(&[200], "manifest");
        assert_eq!(pulled.body, manifest);
        let got = reg.get(&format!("/v2/{repo}/blobs/{digest}")).await;
        got.expect_status_in(&[200], "blob");
        assert!(got.body == blob, "the blob from replica {i}");
    }

    replicas[0].delete(&format!("/v2/{repo}/manifests/v1")).await.expect_status_in(&[202], "untag");
    let tags = replicas[1].tags_list(repo, None, None).await;
    assert!(string_list(&tags.json(), "tags").is_empty(), "the removal is seen at once");
}

/// A replica killed (SIGKILL) in the middle of a push loses nothing it acknowledged: the
/// client carries on with the same upload session on the other replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_continues_on_another_replica_after_one_is_killed() {
    let Some(shared) = Shared::start() else { return };
    let ((one, _d1), (two, _d2)) = (shared.replica(), shared.replica());
    let (first, second) = (Registry::at(one.url()), Registry::at(two.url()));
    let repo = "acme/killed";
    let blob = random_bytes(2 * 1024 * 1024, 11);
    let location = first.begin_upload(repo).await;
    let reply = first.patch_chunk(&location, 0, &blob[..1024 * 1024]).await;
    reply.expect_status_in(&[202], "a chunk acknowledged by the first replica");
    let location = first.resolve(&reply.location());
    drop(one); // SIGKILL

    let status = second.get(&location_path(&location)).await;
    status.expect_status_in(&[204], "the session, on the survivor");
    assert_eq!(status.header("Range").as_deref(), Some("0-1048575"), "the acknowledged bytes");
    let reply =
        second.patch_chunk(&location_path(&location), 1024 * 1024, &blob[1024 * 1024..]).await;
    reply.expect_status_in(&[202], "the rest, on the survivor");
    let location = second.resolve(&reply.location());
    let digest = sha256_digest(&blob);
    second.put_upload(&location, &digest, &[]).await.expect_status_in(&[201], "close");
    let config = image_config("killed");
    second.push_blob(repo, &config).await;
    second.push_manifest(repo, "v1", OCI_MANIFEST, &image_manifest(&config, &[&blob])).await;
    let got = second.get(&format!("/v2/{repo}/blobs/{digest}")).await;
    assert!(got.body == blob, "every byte, the acknowledged ones included");
}

/// Garbage collection run on one replica's machine while pushes go on through the other
/// deletes nothing they use: the grace period holds across replicas, whose database and
/// bucket are one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collecting_garbage_beside_pushes_on_another_replica_keeps_them_whole() {
    let Some(shared) = Shared::start() else { return };
    let (two, _d2) = shared.replica();
    let pusher = std::sync::Arc::new(Registry::at(two.url()));
    let gc_dir = tempfile::tempdir().expect("the collector's data directory");
    let env = shared.env();
    let collector = std::thread::spawn(move || {
        for _ in 0..5 {
            let out = std::process::Command::new(crate::process::imagehub_bin())
                .args(["gc", "--data-dir"])
                .arg(gc_dir.path())
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .output()
                .expect("run imagehub gc");
            assert!(out.status.success(), "gc: {}", String::from_utf8_lossy(&out.stderr));
        }
    });
    let mut pushes = Vec::new();
    for i in 0..8u64 {
        let reg = pusher.clone();
        pushes.push(tokio::spawn(async move {
            let repo = format!("acme/gc{i}");
            let digest =
                crate::support::registry::push_image(&reg, &repo, "v1", &format!("gc{i}")).await;
            (repo, digest)
        }));
    }
    let mut pushed = Vec::new();
    for push in pushes {
        pushed.push(push.await.expect("push task"));
    }
    collector.join().expect("the collector");
    for (repo, _) in pushed {
        let manifest = pusher.get_manifest(&repo, "v1").await;
        manifest.expect_status_in(&[200], "the manifest survived");
        let manifest: serde_json::Value = manifest.json();
        for layer in
            manifest["layers"].as_array().expect("layers").iter().chain([&manifest["config"]])
        {
            let digest = layer["digest"].as_str().expect("digest");
            let blob = pusher.get(&format!("/v2/{repo}/blobs/{digest}")).await;
            blob.expect_status_in(&[200], "every blob survived");
        }
    }
}

/// An account made through one replica logs in on the other, and a token one replica
/// issued pushes through the other: the users are in the shared database, the signing
/// key in the shared `auth.signing_key_file`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_and_its_token_from_one_replica_work_on_the_other() {
    let Some(shared) = Shared::start() else { return };
    let keys = tempfile::tempdir().expect("keys");
    let key = keys.path().join("signing-key.pem");
    let (one, two) = (shared.hub(&key), shared.hub(&key));
    let olga = one.olga_with_public_acme().await;
    let token = one.token(&olga, &[repo_scope("acme/app", "pull,push")]).await.expect("token");
    two.push_image(Some(&token), "acme/app", "v1").await.expect("pushed on two");
    let path = "/v2/acme/app/manifests/v1";
    one.send(one.v2(Method::GET, path, Some(&token))).await.expect_status(200, "pulled on one");
    let again = two.token(&olga, &[repo_scope("acme/app", "pull")]).await;
    assert!(again.is_ok(), "olga logs in on the other replica");
}

/// A password changed through one replica ends the registry tokens issued before it on
/// the other as soon as the other hears of it (PostgreSQL's NOTIFY, from a trigger), not
/// when the epoch it cached runs out a few seconds later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_changed_on_one_replica_ends_old_tokens_on_the_other_when_heard() {
    let Some(shared) = Shared::start() else { return };
    let alice = AliceOnTwoReplicas::start(&shared).await;
    alice.pull_on_two().await.expect_status(200, "two now holds alice's epoch");
    // Two counts the start of its listening as a notice; a change made before it would
    // be caught by the fresh start all the same.
    let before = notices_heard_after(&alice.two, 0).await;

    alice.change_password_on_one().await;
    notices_heard_after(&alice.two, before).await;
    alice.pull_on_two().await.expect_status(401, "a token from before the change, on two");
}

/// A replica whose listening connection is cut listens again: it counts the gap as a
/// notice missed (dropping what it cached) and acts on the notices that follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_listening_connection_is_cut_listens_again() {
    use sqlx::{Connection as _, Row as _};
    let Some(shared) = Shared::start() else { return };
    let alice = AliceOnTwoReplicas::start(&shared).await;
    let before = notices_heard_after(&alice.two, 0).await;

    let mut db = sqlx::AnyConnection::connect(&shared.database).await.expect("connect");
    let cut = sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&mut db)
    .await
    .expect("terminate the listening connections");
    assert_eq!(cut.iter().filter(|row| row.get::<bool, _>(0)).count(), 2, "one per replica");
    let reconnected = notices_heard_after(&alice.two, before).await;
    alice.pull_on_two().await.expect_status(200, "two holds alice's epoch again");

    alice.change_password_on_one().await;
    notices_heard_after(&alice.two, reconnected).await;
    alice.pull_on_two().await.expect_status(401, "heard on the new connection");
}

/// Two replicas signing with one key, and alice, with an image pushed through two and a
/// registry token one issued.
struct AliceOnTwoReplicas {
    one: Hub,
    two: Hub,
    token: String,
    _keys: tempfile::TempDir,
}

impl AliceOnTwoReplicas {
    const CRED: (&str, &str) = ("alice", "alice-Secret-1");

    async fn start(shared: &Shared) -> AliceOnTwoReplicas {
        let keys = tempfile::tempdir().expect("keys");
        let key = keys.path().join("signing-key.pem");
        let (one, two) = (shared.hub(&key), shared.hub(&key));
        let (name, password) = Self::CRED;
        one.create_user(name, password).await;
        let scopes = [repo_scope("alice/app", "pull,push")];
        let token = one.token(&Cred::basic(name, password), &scopes).await.expect("token");
        two.push_image(Some(&token), "alice/app", "v1").await.expect("pushed on two");
        AliceOnTwoReplicas { one, two, token, _keys: keys }
    }

    async fn pull_on_two(&self) -> crate::support::reply::Reply {
        let path = "/v2/alice/app/manifests/v1";
        let pull = self.two.v2(Method::GET, path, Some(&self.token));
        self.two.send(pull.header("accept", OCI_MANIFEST)).await
    }

    async fn change_password_on_one(&self) {
        let alice = Cred::basic(Self::CRED.0, Self::CRED.1);
        let change = Some(serde_json::json!({"password": "alice-Secret-2"}));
        let reply = self.one.api(&alice, Method::PATCH, "/api/v1/user", change).await;
        reply.expect_status(200, "the password changed on one");
    }
}

/// Waits until `hub` has heard more than `count` notices from the database (its
/// `/metrics`), and returns how many.
async fn notices_heard_after(hub: &Hub, count: u64) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let metrics = hub.send(hub.client.get(hub.url("/metrics"))).await.text();
        let heard = metrics
            .lines()
            .find_map(|line| line.strip_prefix("imagehub_replica_notices_heard_total "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .expect("the notices-heard counter in /metrics");
        if heard > count {
            return heard;
        }
        assert!(std::time::Instant::now() < deadline, "no notice heard in 30 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Failed logins counted on one replica slow the same guesser down on the other, and a
/// success on the other clears them: the counts are in the shared database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_on_one_replica_slow_the_guesser_on_the_other() {
    let Some(shared) = Shared::start() else { return };
    let start = |free_failures| {
        let (database, s3) = (shared.database.clone(), shared.s3.config());
        Hub::start_with(move |c| {
            c.metadata.url = database;
            c.storage.s3 = Some(s3);
            c.auth.max_failed_logins = free_failures;
        })
    };
    let (one, two) = (start(2), start(2));
    one.create_user("alice", "alice-Secret-1").await;
    let scope = [repo_scope("alice/app", "pull")];
    for attempt in 1..=2 {
        let refused = one.token(&Cred::basic("alice", "wrong-password"), &scope).await;
        refused.expect_err("a wrong password").expect_status(401, &format!("attempt {attempt}"));
    }
    let blocked = two.token(&Cred::basic("alice", "alice-Secret-1"), &scope).await;
    blocked.expect_err("blocked").expect_status(429, "the right password, on the other replica");

    let (three, four) = (start(3), start(3));
    three.create_user("bob", "bob-Secret-1").await;
    let scope = [repo_scope("bob/app", "pull")];
    for replica in [&three, &four] {
        let refused = replica.token(&Cred::basic("bob", "wrong-password"), &scope).await;
        refused.expect_err("a wrong password").expect_status(401, "a failure");
    }
    four.token(&Cred::basic("bob", "bob-Secret-1"), &scope).await.expect("below the limit");
    let refused = three.token(&Cred::basic("bob", "wrong-password"), &scope).await;
    refused.expect_err("a wrong password").expect_status(401, "counted from zero again");
    let again = three.token(&Cred::basic("bob", "wrong-password"), &scope).await;
    again.expect_err("a wrong password").expect_status(401, "still below the limit");
}

/// `imagehub migrate --to` moves a SQLite hub's metadata into an empty PostgreSQL
/// database: a multi-platform image and a README image keep their digests and details,
/// search finds them, accounts log in, and new pushes get new ids. A second run refuses
/// to write over the hub it made. (Runs in the suite's PostgreSQL pass.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_moves_a_hubs_metadata_into_postgresql() {
    let home = tempfile::tempdir().expect("a home for the target's name");
    let Some(url) = imagehub_testkit::backend::metadata_url(home.path()) else { return };
    // A single-machine hub, SQLite and the filesystem, in either pass.
    let hub = Hub::start_with(|c| {
        c.metadata.url.clear();
        c.storage.s3 = None;
    });
    let olga = hub.olga_with_public_acme().await;
    let readme = hub.push_with_readme(&olga, "acme/app", "v1", "# Moved\n").await;
    let token = hub.token(&olga, &[repo_scope("acme/tools", "pull,push")]).await.expect("token");
    let platforms = [
        hub.push_platform_image(&token, "acme/tools", "amd64").await,
        hub.push_platform_image(&token, "acme/tools", "arm64").await,
    ];
    let index =
        serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": platforms});
    let index = hub.put_manifest(&token, "acme/tools", "v1", &index).await;

    let data_dir = hub.server().data_dir().to_path_buf();
    let migrate = || {
        let output = std::process::Command::new(crate::process::imagehub_bin())
            .args(["migrate", "--data-dir", data_dir.to_str().expect("utf-8"), "--to", &url])
            .env_remove("IMAGEHUB_METADATA__URL")
            .output()
            .expect("run imagehub migrate");
        let said = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), said)
    };
    let (ok, said) = migrate();
    assert!(ok && said.contains("4 manifest digests verified"), "{said}");
    assert!(said.contains("repositories 2") && !said.contains(&url), "{said}");
    let (ok, said) = migrate();
    assert!(!ok && said.contains("already holds a hub"), "{said}");

    let hub = hub.restart_with(move |c| {
        c.metadata.url = url;
        c.storage.s3 = None; // the blobs stay where they were
    });
    let image = hub.api(&olga, Method::GET, "/api/v1/orgs/acme/repos/app/images/v1", None).await;
    let image = image.expect_status(200, "the README image").json();
    assert_eq!(image["digest"], readme.as_str(), "{image}");
    assert_eq!(image["details"]["docs"], "# Moved\n", "{image}");
    let path = "/v2/acme/tools/manifests/v1";
    let pulled = hub.send(hub.v2(Method::GET, path, Some(&token))).await;
    pulled.expect_status(200, "the index, with the token issued before the move");
    assert_eq!(pulled.header("Docker-Content-Digest").as_deref(), Some(index.as_str()));
    let found = hub.api(&olga, Method::GET, "/api/v1/search?q=tools", None).await;
    assert!(found.expect_status(200, "search").text().contains("acme/tools"));
    hub.push_with_readme(&olga, "acme/app", "v2", "# After\n").await;
    hub.create_user("newcomer", "newcomer-Secret-1").await;
}

/// Replicas collect garbage one at a time: while the lock is held (here by the test, as
/// a collection on another replica holds it), `imagehub gc` says so and touches
/// nothing; once it is free, the next run collects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_collected_by_one_replica_at_a_time() {
    use sqlx::Connection as _;
    let Some(shared) = Shared::start() else { return };
    let (replica, _dir) = shared.replica();
    let reg = Registry::at(replica.url());
    let (_, digest) =
        crate::support::registry::push_image(&reg, "acme/gc", "v1", "one at a time").await;
    reg.delete("/v2/acme/gc/manifests/v1").await.expect_status_in(&[202], "untag");

    let gc_dir = tempfile::tempdir().expect("the collector's data directory");
    let env = shared.env();
    let gc = || {
        let output = std::process::Command::new(crate::process::imagehub_bin())
            .args(["gc", "--grace-period-secs", "0", "--data-dir"])
            .arg(gc_dir.path())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("run imagehub gc");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    sqlx::any::install_default_drivers();
    let mut holder = sqlx::AnyConnection::connect(&shared.database).await.expect("connect");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(imagehub_server::GC_LOCK)
        .execute(&mut holder)
        .await
        .expect("take the lock");
    let said = gc();
    assert!(said.contains("another garbage collection is running"), "{said}");
    reg.get_manifest("acme/gc", &digest).await.expect_status_in(&[200], "untouched");
    holder.close().await.expect("release the lock");
    let said = gc();
    assert!(said.contains("removed 1 manifests"), "{said}");
    reg.get_manifest("acme/gc", &digest).await.expect_status_in(&[404], "collected");
}

/// A replica starting while another is between creating an upload's state in the bucket
/// and recording its session leaves that upload alone: on shared storage only leftovers
/// older than ten minutes are an earlier run's. (The window is made by taking the
/// session's row away while the replica starts, and putting it back.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_replica_leaves_the_others_young_uploads_alone() {
    use sqlx::{Connection as _, Row as _};
    let Some(shared) = Shared::start() else { return };
    let (one, _d1) = shared.replica();
    let first = Registry::at(one.url());
    let location = location_path(&first.begin_upload("acme/young").await);
    // Bytes received, so the upload has state in the bucket that a cleanup could take.
    let blob = b"a young upload";
    first.patch_chunk(&location, 0, &blob[..7]).await.expect_status_in(&[202], "a chunk");
    let id = location.split("/uploads/").nth(1).and_then(|rest| rest.split(['?', '/']).next());
    let id = id.expect("an upload id in the Location").to_string();
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&shared.database).await.expect("connect");
    let row =
        sqlx::query("DELETE FROM uploads WHERE id = $1 RETURNING repository, started_at, owner")
            .bind(&id)
            .fetch_one(&mut db)
            .await
            .expect("the session's row");

    let (two, _d2) = shared.replica();
    sqlx::query("INSERT INTO uploads (id, repository, started_at, owner) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(row.get::<String, _>(0))
        .bind(row.get::<i64, _>(1))
        .bind(row.get::<String, _>(2))
        .execute(&mut db)
        .await
        .expect("the session recorded");
    let second = Registry::at(two.url());
    let reply = second.put_upload(&location, &sha256_digest(blob), &blob[7..]).await;
    reply.expect_status_in(&[201], "finished on the replica that started meanwhile");
}

/// Pulls by tag arriving together are looked up together on PostgreSQL (one query for
/// what queued while others ran): each still gets its own tag's manifest, or 404 for a
/// tag or repository that does not exist, and a tag moved on one replica is pulled at
/// once from the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_by_tag_arriving_together_each_get_their_own_manifest() {
    let Some(shared) = Shared::start() else { return };
    let ((one, _d1), (two, _d2)) = (shared.replica(), shared.replica());
    let (pusher, puller) = (Registry::at(one.url()), std::sync::Arc::new(Registry::at(two.url())));
    let mut pushed = std::collections::HashMap::new();
    for i in 0..12 {
        let repo = if i % 2 == 0 { "acme/even" } else { "acme/odd" };
        let tag = format!("v{i}");
        let (manifest, _) =
            crate::support::registry::push_image(&pusher, repo, &tag, &format!("image {i}")).await;
        pushed.insert((repo.to_string(), tag), manifest);
    }
    let mut pulls = Vec::new();
    for round in 0..8 {
        for i in 0..16 {
            let repo = match i % 3 {
                0 => "acme/even",
                1 => "acme/odd",
                _ => "acme/none",
            };
            let tag = format!("v{}", (i + round) % 14);
            let puller = puller.clone();
            pulls.push(tokio::spawn(async move {
                let reply = puller.get_manifest(repo, &tag).await;
                ((repo.to_string(), tag), reply)
            }));
        }
    }
    for pull in pulls {
        let (key, reply) = pull.await.expect("a pull");
        match pushed.get(&key) {
            Some(manifest) => {
                reply.expect_status_in(&[200], "a pushed tag");
                assert!(&reply.body == manifest, "{key:?} got its own manifest");
            }
            None => {
                reply.expect_status_in(&[404], "a tag never pushed");
                let code = if key.0 == "acme/none" { "NAME_UNKNOWN" } else { "MANIFEST_UNKNOWN" };
                crate::support::registry::assert_error_body(&reply, &[code], "unknown");
            }
        }
    }

    let (moved, _) =
        crate::support::registry::push_image(&pusher, "acme/even", "v0", "moved").await;
    let (pulled_now, pulled_again) = tokio::join!(
        puller.get_manifest("acme/even", "v0"),
        puller.get_manifest("acme/even", "v0")
    );
    assert!(pulled_now.body == moved && pulled_again.body == moved, "the moved tag, at once");
}

/// Replicas started together on a new database both come up: one makes the first site
/// admin, the other finds it made (rather than failing to start on the name taken), and
/// the admin logs in on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_on_a_new_database_both_serve() {
    let Some(shared) = Shared::start() else { return };
    let mut env = shared.env();
    env.retain(|(key, _)| *key != "IMAGEHUB_AUTH__ENABLED");
    env.push(("IMAGEHUB_ADMIN_PASSWORD", "the-first-admin".into()));
    let starts: Vec<_> = (0..2)
        .map(|_| {
            let env = env.clone();
            std::thread::spawn(move || {
                let dir = tempfile::tempdir().expect("the replica's data directory");
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                (ServerProcess::start_with_env(dir.path(), &env), dir)
            })
        })
        .collect();
    let replicas: Vec<_> =
        starts.into_iter().map(|s| s.join().expect("a replica started")).collect();
    for (replica, _) in &replicas {
        let reply = reqwest::Client::new()
            .get(format!("{}/v2/", replica.url()))
            .basic_auth("admin", Some("the-first-admin"))
            .send()
            .await
            .expect("GET /v2/");
        assert_eq!(reply.status(), 200, "the admin on {}", replica.url());
    }
}

/// An import queued through one replica is run by another: the job is in the shared
/// database, its upstream credentials sealed by one and opened by the other with the
/// shared `import.sealing_key_file`, and the replica the client asks follows the job to
/// its end though another runs it. (The first replica's one import worker is kept busy
/// on a held job, so the second must take the new one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_queued_on_one_replica_is_run_by_another() {
    use crate::support::distribution::Distribution;
    use crate::support::proxy::Proxy;
    use serde_json::json;
    let Some(shared) = Shared::start() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let private = Distribution::start(&dir.path().join("private"), None);
    let (_, digest) =
        crate::support::registry::push_image(&Registry::at(&private.url()), "team/app", "v1", "x")
            .await;
    drop(private);
    let private = Distribution::start(&dir.path().join("private"), Some(("alice", "pass-1")));
    let open = Distribution::start(&dir.path().join("open"), None);
    crate::support::registry::push_image(&Registry::at(&open.url()), "team/held", "v1", "h").await;
    let proxy = Proxy::start(&open.url()).await;
    proxy.hold("/v2/team/held/manifests/v1");
    let key = dir.path().join("import.key");
    let start = |workers: usize| {
        let (database, s3, key) = (shared.database.clone(), shared.s3.config(), key.clone());
        let hosts = vec![private.host.clone(), proxy.host.clone()];
        Hub::start_with(move |c| {
            c.metadata.url = database;
            c.storage.s3 = Some(s3);
            c.import.sealing_key_file = Some(key);
            c.import.insecure_registries = hosts;
            c.import.workers = workers;
        })
    };
    let one = start(1);
    let olga = one.olga_with_public_acme().await;
    let queue = |body: serde_json::Value| {
        one.api(&olga, Method::POST, "/api/v1/orgs/acme/images/import", Some(body))
    };
    let busy = queue(json!({"source_url": format!("{}/team/held:v1", proxy.host)})).await;
    busy.expect_status(202, "the job that keeps replica one busy");
    proxy.reached().await;

    let _two = start(2);
    let body = json!({"source_url": format!("{}/team/app:v1", private.host),
                      "auth": {"username": "alice", "password": "pass-1"}});
    let queued = queue(body).await;
    let location = queued.expect_status(202, "queued on one").header("location").expect("url");
    let job = one.api(&olga, Method::GET, &format!("{location}?wait=60"), None).await.json();
    assert_eq!(
        (job["state"].as_str(), job["digest"].as_str()),
        (Some("succeeded"), Some(digest.as_str())),
        "run by the other replica, followed on this one: {job}"
    );
    proxy.release();
}

/// Background jobs are claimed once however many replicas claim at the same moment: on
/// PostgreSQL a claimer that waited for another's claim of a row finds it no longer
/// due, and claimers skip rows another holds. Four "replicas" (each its own pool), six
/// claimers each, six index, build and import jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_take_each_job_once() {
    use sqlx::Connection as _;
    let Some(shared) = Shared::start() else { return };
    let mut replicas = Vec::new();
    for _ in 0..4 {
        let meta = imagehub_metadata::Metadata::open_postgres(&shared.database).await;
        replicas.push(meta.expect("a replica's metadata"));
    }
    let mut db = sqlx::AnyConnection::connect(&shared.database).await.expect("connect");
    for i in 0..6 {
        sqlx::query("INSERT INTO jobs (kind, repository, digest, run_after, created_at) VALUES ('index', 'acme/app', $1, 0, 0)")
            .bind(format!("sha256:{i:064}"))
            .execute(&mut db)
            .await
            .expect("an index job");
        sqlx::query(
            "INSERT INTO build_jobs (app, version, platforms, repository, tag, created_by, origin, run_after, created_at)
             VALUES ('app', $1, 'linux/amd64', 'builds/app', $1, 'olga', 'api', 0, 0)",
        )
        .bind(format!("v{i}"))
        .execute(&mut db)
        .await
        .expect("a build job");
        sqlx::query(
            "INSERT INTO import_jobs (namespace, created_by, source, target_repository, run_after, created_at)
             VALUES ('acme', 'olga', $1, 'acme/app', 0, 0)",
        )
        .bind(format!("upstream.example/app:v{i}"))
        .execute(&mut db)
        .await
        .expect("an import job");
    }
    let mut claimers = Vec::new();
    for meta in &replicas {
        for _ in 0..6 {
            let meta = meta.clone();
            claimers.push(tokio::spawn(async move {
                let mut claimed = [Vec::new(), Vec::new(), Vec::new()];
                loop {
                    let jobs = meta.claim_jobs(600, 1).await.expect("claim index jobs");
                    let build = meta.claim_build_job(600).await.expect("claim a build job");
                    let import = meta.claim_import_job(600).await.expect("claim an import job");
                    if jobs.is_empty() && build.is_none() && import.is_none() {
                        return claimed;
                    }
                    claimed[0].extend(jobs.iter().map(|j| j.id));
                    claimed[1].extend(build.map(|b| b.id));
                    claimed[2].extend(import.map(|j| j.id));
                }
            }));
        }
    }
    let mut all: [Vec<i64>; 3] = Default::default();
    for claimer in claimers {
        for (all, claimed) in all.iter_mut().zip(claimer.await.expect("a claimer")) {
            all.extend(claimed);
        }
    }
    for (kind, mut ids) in ["index", "build", "import"].into_iter().zip(all) {
        ids.sort_unstable();
        assert_eq!(ids, (ids[0]..ids[0] + 6).collect::<Vec<_>>(), "each {kind} job claimed once");
    }
}

/// The database tells every process listening of ended sessions (a new password, a
/// removed user) and of changed jobs, in commit order, whoever made the change, and
/// nothing of writes that changed neither: a claim that took no job wakes no replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_tells_each_replica_of_ended_sessions_and_changed_jobs() {
    use imagehub_metadata::Notice;
    use sqlx::Connection as _;
    let Some(shared) = Shared::start() else { return };
    let meta = imagehub_metadata::Metadata::open_postgres(&shared.database).await.expect("open");
    let mut notices = meta.notices().await.expect("listen").expect("notices on PostgreSQL");
    let mut db = sqlx::AnyConnection::connect(&shared.database).await.expect("connect");
    let statements = [
        "INSERT INTO build_jobs (app, version, platforms, repository, tag, created_by, origin, run_after, created_at)
         VALUES ('app', 'v1', 'linux/amd64', 'builds/app', 'v1', 'olga', 'api', 0, 0)",
        "INSERT INTO namespaces (name, kind, created_at) VALUES ('alice', 'user', 0)",
        "INSERT INTO users (name, source, created_at) VALUES ('alice', 'local', 0)",
        "UPDATE users SET email = 'alice@example.com'",
        "UPDATE users SET sessions_valid_after = 10",
        "DELETE FROM users",
        "INSERT INTO import_jobs (namespace, created_by, source, target_repository, run_after, created_at)
         VALUES ('acme', 'olga', 'upstream.example/app:v1', 'acme/app', 0, 0)",
    ];
    assert!(meta.claim_import_job(600).await.expect("claim").is_none(), "no job yet");
    for statement in statements {
        sqlx::query(statement).execute(&mut db).await.expect(statement);
    }
    let ended = Notice::SessionsEnded { user: "alice".into() };
    let expected = [Notice::BuildJobsChanged, ended.clone(), ended, Notice::ImportJobsChanged];
    for expected in expected {
        let next = tokio::time::timeout(std::time::Duration::from_secs(30), notices.next());
        assert_eq!(next.await.expect("a notice within 30 s").expect("a notice"), expected);
    }
    assert!(meta.claim_import_job(600).await.expect("claim").is_some(), "the import job");
    let next = tokio::time::timeout(std::time::Duration::from_secs(30), notices.next());
    assert_eq!(next.await.expect("in time").expect("a notice"), Notice::ImportJobsChanged);
}
