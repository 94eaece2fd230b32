//! Filling a hub with the corpus: a public organization `bench`, then one image per
//! repository (README layer + config, each one `POST ?digest=`, then the manifest),
//! pushed by parallel workers with bearer tokens from `/token`, one token per batch of
//! repositories; finally the indexing queue is run to the end.
//!
//! The workers log in to `/token` with an access token of the admin (`ihp_…` as the
//! Basic password), not the admin's password: a password login costs an Argon2 hash
//! (~30 ms of the server's one core, and ~19 MiB per concurrent login that the server's
//! allocator keeps: 16 concurrent password logins leave it at 300+ MiB RSS), which would
//! make the fill measure logins and the RSS figure measure the allocator.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Serialize;
use serde_json::json;

use super::corpus::Corpus;
use crate::http::{Conn, Req, Target};
use crate::registry;

/// Repositories per token (one `scope` each): the most scopes the hub grants in one
/// token (`/token` refuses more than 32).
const BATCH: u64 = 32;
const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Who pushes: the site admin's Basic credentials.
#[derive(Clone)]
pub struct Admin {
    pub user: String,
    pub password: String,
}

impl Admin {
    /// The `Authorization: Basic …` value.
    pub fn basic(&self) -> String {
        format!("Basic {}", base64(format!("{}:{}", self.user, self.password).as_bytes()))
    }
}

/// What filling took.
#[derive(Debug, Clone, Serialize, Default)]
pub struct FillReport {
    pub repos: u64,
    pub workers: usize,
    pub pushed: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    pub tokens: u64,
    /// Wall seconds for all pushes.
    pub push_seconds: f64,
    /// Wall seconds of `POST /api/v1/admin/index` after the last push.
    pub index_seconds: f64,
    /// Jobs that call ran itself (`ran` of its answer; jobs the background runner was
    /// already working on when it was called are not counted, though it waits for them).
    pub index_ran: u64,
    pub index_pending_after: u64,
}

impl FillReport {
    pub fn total_seconds(&self) -> f64 {
        self.push_seconds + self.index_seconds
    }
}

/// Standard base64 with padding (the bench has no base64 dependency).
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Creates the public organization `bench` (an existing one is fine).
pub async fn create_org(target: &Arc<Target>, admin: &Admin) -> Result<()> {
    let mut conn = Conn::connect(target).await?;
    let body = json!({"name": "bench", "default_visibility": "public"}).to_string();
    let r = conn
        .call(
            Req::post("/api/v1/orgs")
                .header(AUTHORIZATION, &admin.basic())
                .header(CONTENT_TYPE, "application/json")
                .bytes(Bytes::from(body)),
        )
        .await?;
    r.expect(&[201, 409], "create organization bench")
}

/// Creates an access token named `name` (`pull,push`, namespace `bench`) of `admin` and
/// returns the same user with the token's secret as password.
pub async fn access_token(target: &Arc<Target>, admin: &Admin, name: &str) -> Result<Admin> {
    let mut conn = Conn::connect(target).await?;
    let body =
        json!({"name": name, "scopes": ["pull", "push"], "namespaces": ["bench"]}).to_string();
    let r = conn
        .call(
            Req::post("/api/v1/user/tokens")
                .header(AUTHORIZATION, &admin.basic())
                .header(CONTENT_TYPE, "application/json")
                .bytes(Bytes::from(body)),
        )
        .await?;
    r.expect(&[201], "create an access token")?;
    let v: serde_json::Value =
        serde_json::from_slice(&r.body).context("token creation answer is not JSON")?;
    let secret =
        v["secret"].as_str().ok_or_else(|| anyhow!("token creation answer has no \"secret\""))?;
    Ok(Admin { user: admin.user.clone(), password: secret.to_string() })
}

/// A bearer token with `pull,push` on `repos`.
pub async fn token(conn: &mut Conn, admin: &Admin, repos: &[String]) -> Result<String> {
    let mut path = "/token?service=imagehub".to_string();
    for repo in repos {
        path.push_str(&format!("&scope=repository:{repo}:pull,push"));
    }
    let r = conn.call(Req::get(path).header(AUTHORIZATION, &admin.basic())).await?;
    r.expect(&[200], "GET /token")?;
    let v: serde_json::Value =
        serde_json::from_slice(&r.body).context("token response is not JSON")?;
    v["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("token response has no \"token\""))
}

/// Pushes repository `i` of the corpus: layer, config, manifest tagged `latest`.
async fn push_one(conn: &mut Conn, corpus: &Corpus, i: u64) -> Result<()> {
    let (doc, layer, config) = corpus.image(i);
    registry::upload_single_post(conn, &doc.name, &layer).await?;
    registry::upload_single_post(conn, &doc.name, &config).await?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": registry::OCI_MANIFEST,
        "config": {"mediaType": registry::OCI_CONFIG, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": LAYER_TAR, "digest": layer.digest, "size": layer.size}],
    });
    registry::put_manifest(conn, &doc.name, "latest", Bytes::from(manifest.to_string())).await
}

/// Pushes the whole corpus with `workers` connections, printing progress to stderr.
pub async fn push_all(
    target: &Arc<Target>,
    admin: &Admin,
    corpus: Arc<Corpus>,
    workers: usize,
) -> Result<FillReport> {
    let n = corpus.n;
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (next, done, corpus, admin) =
            (next.clone(), done.clone(), corpus.clone(), admin.clone());
        let mut conn = Conn::connect(target).await?;
        tasks.push(tokio::spawn(async move {
            let (mut failed, mut tokens, mut first_error) = (0u64, 0u64, None::<String>);
            loop {
                let start = next.fetch_add(BATCH, Ordering::Relaxed);
                if start >= n {
                    break;
                }
                let batch: Vec<u64> = (start..(start + BATCH).min(n)).collect();
                let names: Vec<String> = batch.iter().map(|&i| corpus.name(i)).collect();
                let bearer = match token(&mut conn, &admin, &names).await {
                    Ok(t) => t,
                    Err(e) => {
                        failed += batch.len() as u64;
                        first_error.get_or_insert(format!("{e:#}"));
                        continue;
                    }
                };
                tokens += 1;
                if let Err(e) = conn.set_default_header(AUTHORIZATION, &format!("Bearer {bearer}"))
                {
                    failed += batch.len() as u64;
                    first_error.get_or_insert(format!("{e:#}"));
                    continue;
                }
                for i in batch {
                    match push_one(&mut conn, &corpus, i).await {
                        Ok(()) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            failed += 1;
                            first_error.get_or_insert(format!("repository {i}: {e:#}"));
                        }
                    }
                }
            }
            (failed, tokens, first_error)
        }));
    }
    // Progress every 10 s while the workers run.
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let d = done.load(Ordering::Relaxed);
                let s = t0.elapsed().as_secs_f64();
                eprintln!("  pushed {d}/{n} in {s:.0} s ({:.0} repos/s)", d as f64 / s);
            }
        })
    };
    let mut rep = FillReport { repos: n, workers, ..Default::default() };
    for task in tasks {
        let (failed, tokens, err) = task.await?;
        rep.failed += failed;
        rep.tokens += tokens;
        if rep.first_error.is_none() {
            rep.first_error = err;
        }
    }
    progress.abort();
    rep.push_seconds = t0.elapsed().as_secs_f64();
    rep.pushed = done.load(Ordering::Relaxed);
    Ok(rep)
}

/// Runs the indexing queue (`POST /api/v1/admin/index`) until it returns; gives up after
/// `limit`. Returns (seconds, jobs run, jobs pending after).
pub async fn run_index(
    target: &Arc<Target>,
    admin: &Admin,
    limit: Duration,
) -> Result<(f64, u64, u64)> {
    let mut conn = Conn::connect(target).await?;
    let t0 = Instant::now();
    let call = conn.call(Req::post("/api/v1/admin/index").header(AUTHORIZATION, &admin.basic()));
    let r = match tokio::time::timeout(limit, call).await {
        Ok(r) => r?,
        Err(_) => bail!("POST /api/v1/admin/index did not return within {} s", limit.as_secs()),
    };
    let seconds = t0.elapsed().as_secs_f64();
    r.expect(&[200], "POST /api/v1/admin/index")?;
    let v: serde_json::Value =
        serde_json::from_slice(&r.body).context("index response is not JSON")?;
    Ok((seconds, v["ran"].as_u64().unwrap_or(0), v["pending"].as_u64().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"admin:pw"), "YWRtaW46cHc=");
    }
}
