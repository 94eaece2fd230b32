//! OCI distribution API operations used by the scenarios: uploads (monolithic, chunked,
//! cross-repo mount), manifests, and paginated listings that follow `Link` headers.

use anyhow::{Context as _, Result, anyhow};
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_RANGE, CONTENT_TYPE};

use crate::data::Blob;
use crate::http::{Conn, Req};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json";

/// Appends `digest=<d>` to an upload location, with `?` or `&` as needed.
pub fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

/// The `rel="next"` target of an RFC 8288 `Link` header value, if any.
pub fn link_next(value: &str) -> Option<String> {
    // Links are `<target>; param; param, <target>; ...`; targets cannot contain '>'.
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let after = &rest[close + 1..];
        let params_end = after.find('<').unwrap_or(after.len());
        let params = &after[..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            let Some((k, v)) = p.split_once('=') else { return false };
            k.trim().eq_ignore_ascii_case("rel")
                && v.trim()
                    .trim_matches('"')
                    .split_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_string());
        }
        rest = &after[params_end..];
    }
    None
}

/// `POST /v2/<repo>/blobs/uploads/`: returns the upload location.
pub async fn start_upload(conn: &mut Conn, repo: &str) -> Result<String> {
    let r = conn.call(Req::post(format!("/v2/{repo}/blobs/uploads/"))).await?;
    r.expect(&[202], "POST upload")?;
    r.header("location").map(str::to_string).ok_or_else(|| anyhow!("POST upload: no Location"))
}

/// Monolithic upload: POST, then one `PUT ?digest=` carrying the whole blob.
pub async fn upload_monolithic(conn: &mut Conn, repo: &str, blob: &Blob) -> Result<()> {
    let location = start_upload(conn, repo).await?;
    let r = conn
        .call(
            Req::put(with_digest(&location, &blob.digest))
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(blob.body()),
        )
        .await?;
    r.expect(&[201], "PUT blob")?;
    check_digest_header(&r, &blob.digest)
}

/// Single-request monolithic upload: `POST /v2/<repo>/blobs/uploads/?digest=` carrying
/// the whole blob (OCI distribution spec, "POST then PUT" in one step).
pub async fn upload_single_post(conn: &mut Conn, repo: &str, blob: &Blob) -> Result<()> {
    let r = conn
        .call(
            Req::post(format!("/v2/{repo}/blobs/uploads/?digest={}", blob.digest))
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(blob.body()),
        )
        .await?;
    r.expect(&[201], "POST blob (single request)")?;
    check_digest_header(&r, &blob.digest)
}

/// Chunked upload: POST, PATCHes of `chunk` bytes with `Content-Range`, empty final PUT.
pub async fn upload_chunked(conn: &mut Conn, repo: &str, blob: &Blob, chunk: u64) -> Result<()> {
    let mut location = start_upload(conn, repo).await?;
    let mut offset = 0u64;
    while offset < blob.size {
        let end = (offset + chunk).min(blob.size);
        let r = conn
            .call(
                Req::patch(location.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_RANGE, &format!("{offset}-{}", end - 1))
                    .body(blob.range(offset, end)),
            )
            .await?;
        r.expect(&[202], "PATCH chunk")?;
        location = r.header("location").map(str::to_string).unwrap_or(location);
        offset = end;
    }
    let r = conn.call(Req::put(with_digest(&location, &blob.digest))).await?;
    r.expect(&[201], "PUT (final)")?;
    check_digest_header(&r, &blob.digest)
}

fn check_digest_header(r: &crate::http::Reply, digest: &str) -> Result<()> {
    match r.header("docker-content-digest") {
        Some(d) if d != digest => Err(anyhow!("server computed digest {d}, expected {digest}")),
        _ => Ok(()),
    }
}

/// Cross-repo mount; falls back to a monolithic upload if the server answers 202.
/// Returns true when the mount itself succeeded.
pub async fn mount_or_upload(conn: &mut Conn, repo: &str, from: &str, blob: &Blob) -> Result<bool> {
    let r = conn
        .call(Req::post(format!("/v2/{repo}/blobs/uploads/?mount={}&from={from}", blob.digest)))
        .await?;
    r.expect(&[201, 202], "POST mount")?;
    if r.status.as_u16() == 201 {
        return Ok(true);
    }
    let location =
        r.header("location").ok_or_else(|| anyhow!("mount answered 202 without Location"))?;
    let r = conn
        .call(
            Req::put(with_digest(location, &blob.digest))
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(blob.body()),
        )
        .await?;
    r.expect(&[201], "PUT blob (after mount refused)")?;
    Ok(false)
}

/// `HEAD` a blob then upload it monolithically if missing (the way push clients do).
pub async fn push_blob(conn: &mut Conn, repo: &str, blob: &Blob) -> Result<()> {
    let r = conn.call_drain(Req::head(format!("/v2/{repo}/blobs/{}", blob.digest))).await?;
    r.expect(&[200, 404], "HEAD blob")?;
    if r.status.as_u16() == 200 {
        return Ok(());
    }
    upload_monolithic(conn, repo, blob).await
}

/// A small OCI image manifest; `annotation` makes it distinct.
pub fn manifest_json(config: &Blob, layers: &[&Blob], annotation: &str) -> Bytes {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| serde_json::json!({"mediaType": OCI_LAYER, "digest": l.digest, "size": l.size}))
        .collect();
    let v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size},
        "layers": layers,
        "annotations": {"org.imagehub.bench": annotation},
    });
    Bytes::from(v.to_string())
}

/// The request for `PUT /v2/<repo>/manifests/<reference>`.
pub fn put_manifest_req(repo: &str, reference: &str, body: Bytes) -> Req {
    Req::put(format!("/v2/{repo}/manifests/{reference}"))
        .header(CONTENT_TYPE, OCI_MANIFEST)
        .bytes(body)
}

/// `GET /v2/<repo>/manifests/<reference>` as a pull client asks for it.
pub fn get_manifest_req(repo: &str, reference: &str) -> Req {
    Req::get(format!("/v2/{repo}/manifests/{reference}")).header(ACCEPT, MANIFEST_ACCEPT)
}

/// Puts a manifest and checks the answer.
pub async fn put_manifest(conn: &mut Conn, repo: &str, reference: &str, body: Bytes) -> Result<()> {
    conn.call(put_manifest_req(repo, reference, body)).await?.expect(&[201], "PUT manifest")
}

/// Walks a paginated listing (`tags/list` or `_catalog`) following `Link: rel="next"`
/// and returns the raw body of every page. Parsing is left to [`listing_entries`] so a
/// timed walk measures the server, not the client's JSON decoder: the decoding cost is
/// the same for every registry and would only blur the ratio.
pub async fn walk(conn: &mut Conn, first: &str) -> Result<Vec<Bytes>> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(path) = next.take() {
        if pages.len() >= 100_000 {
            return Err(anyhow!("listing did not end after 100000 pages"));
        }
        let r = conn.call(Req::get(path.clone())).await?;
        r.expect(&[200], &format!("GET {path}"))?;
        next = r.header("link").and_then(link_next);
        pages.push(r.body);
    }
    Ok(pages)
}

/// All entries of `field` (`tags` or `repositories`) across the pages of a listing.
pub fn listing_entries(pages: &[Bytes], field: &str) -> Result<Vec<String>> {
    let mut entries = Vec::new();
    for (i, body) in pages.iter().enumerate() {
        let mut page: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .with_context(|| format!("JSON of listing page {}", i + 1))?;
        if let Some(serde_json::Value::Array(items)) = page.remove(field) {
            entries.extend(items.into_iter().filter_map(|x| match x {
                serde_json::Value::String(s) => Some(s),
                _ => None,
            }));
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_next_variants() {
        assert_eq!(
            link_next(r#"</v2/_catalog?last=b&n=100>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=b&n=100")
        );
        assert_eq!(
            link_next("<http://h/v2/r/tags/list?n=5&last=x>;rel=next").as_deref(),
            Some("http://h/v2/r/tags/list?n=5&last=x")
        );
        assert_eq!(link_next(r#"</a>; rel="prev", </b>; rel="next""#).as_deref(), Some("/b"));
        assert_eq!(link_next(r#"</a>; rel="prev""#), None);
        assert_eq!(link_next(""), None);
        assert_eq!(link_next(r#"</c>; title="x"; rel="first next""#).as_deref(), Some("/c"));
    }

    #[test]
    fn digest_is_appended() {
        assert_eq!(with_digest("/u/1", "sha256:a"), "/u/1?digest=sha256:a");
        assert_eq!(with_digest("/u/1?_state=x", "sha256:a"), "/u/1?_state=x&digest=sha256:a");
    }
}
