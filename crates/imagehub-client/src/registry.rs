//! Talking to a registry's `/v2` API as a client: one request at a time, with the auth
//! dance, retries and the operator's per-registry settings (mirror, plain HTTP or
//! unverified TLS, private addresses) applied. Manifests come back byte for byte and
//! checked against their digest; blobs as a stream checked as it ends.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use imagehub_oci::{Digest, Hasher, Reference, RepoName, media_type};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, LINK, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};

use crate::auth::{Challenge, Credentials, TokenCache, parse_challenge};
use crate::blob::BlobStream;
use crate::error::ClientError;
use crate::guard::AddressPolicy;
use crate::reference::{RemoteReference, endpoint_of};

/// Every manifest type we copy, for `Accept`.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";
/// Largest tag-list page read, and most tags listed in all.
const MAX_TAG_PAGE_BYTES: u64 = 4 << 20;
const MAX_TAGS: usize = 100_000;

/// How the client treats one registry, as the operator configured it.
#[derive(Debug, Clone, Default)]
pub struct RegistrySettings {
    /// A host (`host[:port]`) to ask instead of the registry itself (a pull-through
    /// mirror of it), or `None`.
    pub mirror: Option<String>,
    /// Whether plain HTTP or unverified TLS may be used (first HTTPS, then HTTP).
    pub insecure: bool,
}

/// The client's settings.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Per registry, as references name it (`docker.io`, `127.0.0.1:5001`). Only
    /// registries listed here (and their mirrors) may be reached at private or
    /// loopback addresses.
    pub registries: HashMap<String, RegistrySettings>,
    /// Tries of one request on connection errors, 5xx and short 429s.
    pub max_attempts: u32,
    /// The first wait between tries; it doubles each time.
    pub backoff: Duration,
    /// A 429 asking to wait longer than this is returned as `RateLimited`, for the
    /// caller to come back later, rather than waited for.
    pub max_inline_wait: Duration,
    pub max_manifest_bytes: u64,
    pub connect_timeout: Duration,
    /// Whether any address may be reached, private ones too (a command-line client on
    /// the user's machine); a server importing on others' behalf keeps this off.
    pub any_address: bool,
    /// Treat every registry as insecure (plain HTTP or unverified TLS allowed).
    pub all_insecure: bool,
    /// Longest silence while reading an answer.
    pub read_timeout: Duration,
    pub user_agent: String,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            registries: HashMap::new(),
            max_attempts: 5,
            backoff: Duration::from_millis(500),
            max_inline_wait: Duration::from_secs(60),
            max_manifest_bytes: 4 << 20,
            connect_timeout: Duration::from_secs(10),
            any_address: false,
            all_insecure: false,
            read_timeout: Duration::from_secs(60),
            user_agent: concat!("imagehub/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// A manifest as the registry holds it (or as it is to be written).
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
}

impl FetchedManifest {
    /// A manifest from its bytes and media type; its digest is of the bytes.
    pub fn new(bytes: Bytes, media_type: impl Into<String>) -> FetchedManifest {
        FetchedManifest { digest: Digest::sha256_of(&bytes), bytes, media_type: media_type.into() }
    }
}

/// What a `HEAD` of a manifest tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// `Docker-Content-Digest`, when the registry sends it (all common ones do).
    pub digest: Option<Digest>,
    pub media_type: Option<String>,
    pub size: Option<u64>,
    /// `RateLimit-Remaining` (Docker Hub), when sent.
    pub rate_limit_remaining: Option<u64>,
}

/// A client of any number of registries, shared by all jobs (its connections are pooled).
pub struct RegistryClient {
    settings: ClientSettings,
    verified: reqwest::Client,
    unverified: reqwest::Client,
    policy: AddressPolicy,
    tokens: TokenCache,
    /// The scheme each insecure registry (or mirror) was found to speak.
    schemes: Mutex<HashMap<String, &'static str>>,
    /// Registries that asked for Basic credentials rather than a token.
    basic: Mutex<HashSet<String>>,
}

/// The registry and repository a request is about, and who asks.
pub struct Target<'a> {
    pub registry: &'a str,
    pub repository: &'a RepoName,
    pub credentials: &'a Credentials,
}

impl<'a> Target<'a> {
    pub fn of(reference: &'a RemoteReference, credentials: &'a Credentials) -> Target<'a> {
        Target { registry: &reference.registry, repository: &reference.repository, credentials }
    }

    fn what(&self, thing: &str) -> String {
        format!("{thing} of {}/{}", self.registry, self.repository)
    }
}

impl RegistryClient {
    pub fn new(settings: ClientSettings) -> Result<RegistryClient, ClientError> {
        let hosts = settings
            .registries
            .iter()
            .flat_map(|(name, r)| std::iter::once(name.as_str()).chain(r.mirror.as_deref()));
        let policy = match settings.any_address {
            true => AddressPolicy::open(),
            false => AddressPolicy::allowing(hosts),
        };
        let build = |verify: bool| {
            let redirects = policy.clone();
            reqwest::Client::builder()
                .user_agent(settings.user_agent.clone())
                .connect_timeout(settings.connect_timeout)
                .read_timeout(settings.read_timeout)
                .dns_resolver(std::sync::Arc::new(policy.clone()))
                .danger_accept_invalid_certs(!verify)
                // Blob downloads are redirected to storage (S3, a CDN); reqwest drops
                // the Authorization header when the host changes. A redirect to an
                // address we may not reach stops there.
                .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                    if attempt.previous().len() >= 10 {
                        attempt.error("too many redirects")
                    } else if let Err(refusal) = redirects.check_url(attempt.url()) {
                        attempt.error(refusal)
                    } else {
                        attempt.follow()
                    }
                }))
                .build()
                .map_err(|e| ClientError::Forbidden(format!("cannot build the HTTP client: {e}")))
        };
        Ok(RegistryClient {
            verified: build(true)?,
            unverified: build(false)?,
            policy,
            tokens: TokenCache::default(),
            schemes: Mutex::new(HashMap::new()),
            basic: Mutex::new(HashSet::new()),
            settings,
        })
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// Checks credentials against a registry as `docker login` does: `GET /v2/`, and
    /// for a token challenge, a token for no particular scope.
    pub async fn check_credentials(
        &self,
        registry: &str,
        credentials: &Credentials,
    ) -> Result<(), ClientError> {
        let base = self.base_url(registry).await?;
        let url = Url::parse(&format!("{base}/v2/")).map_err(|e| ClientError::Protocol {
            registry: registry.to_string(),
            message: e.to_string(),
        })?;
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            registry: registry.to_string(),
            message: describe(&e),
        };
        let response = self.http(registry).get(url.clone()).send().await.map_err(unreachable)?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return match response.status().is_success() {
                true => Ok(()),
                false => Err(ClientError::Upstream {
                    registry: registry.to_string(),
                    status: response.status().as_u16(),
                    message: "GET /v2/ failed: is this a registry?".into(),
                }),
            };
        }
        let repository: RepoName = "login/check".parse().expect("a valid name");
        let target = Target { registry, repository: &repository, credentials };
        let challenge =
            header(response.headers(), WWW_AUTHENTICATE.as_str()).and_then(parse_challenge);
        match (challenge, credentials) {
            (_, Credentials::Anonymous) => Err(unauthorized(&target)),
            (Some(Challenge::Bearer { realm, service, .. }), _) => {
                self.fetch_token(&target, &realm, service.as_deref(), None).await
            }
            (_, Credentials::Basic { username, password }) => {
                let answer = self
                    .http(registry)
                    .get(url)
                    .basic_auth(username, Some(password))
                    .send()
                    .await
                    .map_err(unreachable)?;
                match answer.status().is_success() {
                    true => Ok(()),
                    false => Err(unauthorized(&target)),
                }
            }
        }
    }

    /// `HEAD` of a manifest: its digest without downloading it (Docker Hub does not
    /// count it against the pull rate limit). `None` when the registry has no such
    /// manifest.
    pub async fn head_manifest(
        &self,
        target: &Target<'_>,
        reference: &Reference,
    ) -> Result<Option<ManifestHead>, ClientError> {
        let path = format!("/v2/{}/manifests/{reference}", target.repository);
        let response = self.send(target, Method::HEAD, &path, MANIFEST_ACCEPT).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response =
            self.expect_success(target, response, &format!("manifest {reference}")).await?;
        let headers = response.headers();
        Ok(Some(ManifestHead {
            digest: header(headers, "docker-content-digest").and_then(|d| d.parse().ok()),
            media_type: header(headers, CONTENT_TYPE.as_str()).map(media_type_of),
            size: response.content_length(),
            rate_limit_remaining: header(headers, "ratelimit-remaining")
                .and_then(|v| v.split(';').next()?.trim().parse().ok()),
        }))
    }

    /// A manifest, byte for byte, checked against the digest asked for (or the one the
    /// registry states).
    pub async fn manifest(
        &self,
        target: &Target<'_>,
        reference: &Reference,
    ) -> Result<FetchedManifest, ClientError> {
        let what = target.what(&format!("manifest {reference}"));
        let path = format!("/v2/{}/manifests/{reference}", target.repository);
        let response = self.send(target, Method::GET, &path, MANIFEST_ACCEPT).await?;
        let response = self.expect_success(target, response, &what).await?;
        let stated: Option<Digest> =
            header(response.headers(), "docker-content-digest").and_then(|d| d.parse().ok());
        let content_type = header(response.headers(), CONTENT_TYPE.as_str()).map(media_type_of);
        let bytes =
            read_bounded(response, self.settings.max_manifest_bytes, &what, target.registry)
                .await?;
        let expected = match reference {
            Reference::Digest(digest) => Some(digest.clone()),
            Reference::Tag(_) => stated,
        };
        let digest = match &expected {
            Some(expected) => {
                let actual = digest_of(expected, &bytes);
                if actual != *expected {
                    return Err(ClientError::DigestMismatch {
                        what,
                        expected: expected.clone(),
                        actual,
                    });
                }
                actual
            }
            None => Digest::sha256_of(&bytes),
        };
        let media_type = content_type
            .filter(|t| imagehub_oci::manifest::kind_of(t).is_some())
            .or_else(|| body_media_type(&bytes))
            .unwrap_or_else(|| media_type::OCI_MANIFEST.to_string());
        Ok(FetchedManifest { bytes, media_type, digest })
    }

    /// A blob as a stream that fails at its end unless the bytes match `digest` (and
    /// `size`, when known, as soon as it is passed).
    pub async fn blob(
        &self,
        target: &Target<'_>,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<BlobStream, ClientError> {
        let what = target.what(&format!("blob {digest}"));
        let path = format!("/v2/{}/blobs/{digest}", target.repository);
        let response = self.send(target, Method::GET, &path, "*/*").await?;
        let response = self.expect_success(target, response, &what).await?;
        Ok(BlobStream::new(response, digest.clone(), size, what, target.registry.to_string()))
    }

    /// Every tag of the repository, following `Link` pages.
    pub async fn tags(&self, target: &Target<'_>) -> Result<Vec<String>, ClientError> {
        let what = target.what("tag list");
        let mut path = format!("/v2/{}/tags/list?n=1000", target.repository);
        let mut tags = Vec::new();
        loop {
            let response = self.send(target, Method::GET, &path, "application/json").await?;
            let response = self.expect_success(target, response, &what).await?;
            let next = header(response.headers(), LINK.as_str()).and_then(next_link);
            let body = read_bounded(response, MAX_TAG_PAGE_BYTES, &what, target.registry).await?;
            let page: TagList =
                serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
                    registry: target.registry.to_string(),
                    message: format!("{what}: {e}"),
                })?;
            tags.extend(page.tags.unwrap_or_default());
            if tags.len() > MAX_TAGS {
                return Err(ClientError::TooLarge {
                    what,
                    size: tags.len() as u64,
                    limit: MAX_TAGS as u64,
                });
            }
            match next {
                // The link is absolute or relative to the registry; only its path and
                // query are followed, so a page cannot send us to another host.
                Some(link) => path = path_and_query(&link),
                None => return Ok(tags),
            }
        }
    }

    /// Sends a request with auth and retries; answers 401 only after the challenge
    /// was met, and never a 429 or 5xx unless tries ran out.
    async fn send(
        &self,
        target: &Target<'_>,
        method: Method,
        path: &str,
        accept: &str,
    ) -> Result<Response, ClientError> {
        let scope = format!("repository:{}:pull", target.repository);
        self.send_scoped(target, method, path, accept, &scope, None).await
    }

    /// `send`, for the token `scope` (`repository:NAME:pull,push`, several separated by
    /// spaces as the token service takes them) and with a small `body` if any.
    pub(crate) async fn send_scoped(
        &self,
        target: &Target<'_>,
        method: Method,
        path: &str,
        accept: &str,
        scope: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<Response, ClientError> {
        let registry = target.registry;
        let scope = scope.to_string();
        let mut attempt = 0;
        let mut answered_challenge = false;
        // A token was issued for these credentials: a refusal now is about rights.
        let mut credentials_taken = false;
        loop {
            attempt += 1;
            let base = self.base_url(registry).await?;
            let url = Url::parse(&format!("{base}{path}")).map_err(|e| ClientError::Protocol {
                registry: registry.to_string(),
                message: format!("{path}: {e}"),
            })?;
            let mut request =
                self.http(registry).request(method.clone(), url).header(ACCEPT, accept);
            if let Some((content_type, body)) = &body {
                request = request.header(CONTENT_TYPE, *content_type).body(body.clone());
            }
            request = self.authorize(request, registry, &scope, target.credentials);
            let retry_in = self.settings.backoff * 2u32.saturating_pow(attempt - 1);
            let out_of_tries = attempt >= self.settings.max_attempts;
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) if is_untrusted(&e) => {
                    let message = describe(&e);
                    return Err(ClientError::Untrusted { registry: registry.to_string(), message });
                }
                Err(e) if out_of_tries || is_refusal(&e) => {
                    return Err(ClientError::Unreachable {
                        registry: registry.to_string(),
                        message: describe(&e),
                    });
                }
                Err(e) => {
                    tracing::debug!(registry, error = %describe(&e), "retrying after a connection error");
                    tokio::time::sleep(retry_in).await;
                    continue;
                }
            };
            match response.status() {
                StatusCode::UNAUTHORIZED if !answered_challenge => {
                    answered_challenge = true;
                    attempt -= 1; // meeting the challenge is not a failed try
                    let challenge = header(response.headers(), WWW_AUTHENTICATE.as_str())
                        .and_then(parse_challenge);
                    match challenge {
                        Some(Challenge::Bearer { realm, service, .. }) => {
                            self.fetch_token(target, &realm, service.as_deref(), Some(&scope))
                                .await?;
                            credentials_taken = !target.credentials.is_anonymous();
                        }
                        Some(Challenge::Basic) if !target.credentials.is_anonymous() => {
                            self.basic
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(registry.to_string());
                        }
                        _ => return Err(unauthorized(target)),
                    }
                }
                StatusCode::UNAUTHORIZED if credentials_taken => return Err(denied(target)),
                StatusCode::UNAUTHORIZED => return Err(unauthorized(target)),
                StatusCode::TOO_MANY_REQUESTS => {
                    let wait = retry_after(response.headers()).unwrap_or(retry_in);
                    if out_of_tries || wait > self.settings.max_inline_wait {
                        let retry_at = SystemTime::now() + wait;
                        return Err(ClientError::RateLimited {
                            registry: registry.to_string(),
                            retry_at,
                        });
                    }
                    tracing::info!(registry, wait_s = wait.as_secs_f64(), "rate limited; waiting");
                    tokio::time::sleep(wait).await;
                }
                status if status.is_server_error() && !out_of_tries => {
                    tracing::debug!(registry, %status, "retrying after a server error");
                    tokio::time::sleep(retry_in).await;
                }
                _ => return Ok(response),
            }
        }
    }

    pub(crate) fn http(&self, registry: &str) -> &reqwest::Client {
        match self.registry_settings(registry).insecure {
            true => &self.unverified,
            false => &self.verified,
        }
    }

    fn registry_settings(&self, registry: &str) -> RegistrySettings {
        let mut settings = self.settings.registries.get(registry).cloned().unwrap_or_default();
        settings.insecure |= self.settings.all_insecure;
        settings
    }

    /// `https://host` (or `http://` for an insecure registry that does not speak TLS),
    /// the mirror's when one is set.
    pub(crate) async fn base_url(&self, registry: &str) -> Result<String, ClientError> {
        let settings = self.registry_settings(registry);
        let host = settings.mirror.clone().unwrap_or_else(|| endpoint_of(registry).to_string());
        let known = self.schemes.lock().unwrap_or_else(|e| e.into_inner()).get(&host).copied();
        let scheme = match (settings.insecure, known) {
            (false, _) => "https",
            (true, Some(scheme)) => scheme,
            // As docker does for an insecure registry: HTTPS without verifying the
            // certificate if it speaks TLS, plain HTTP otherwise.
            (true, None) => {
                let probe = self.unverified.get(format!("https://{host}/v2/")).send().await;
                let scheme = if probe.is_ok() { "https" } else { "http" };
                self.schemes.lock().unwrap_or_else(|e| e.into_inner()).insert(host.clone(), scheme);
                scheme
            }
        };
        let base = format!("{scheme}://{host}");
        let url = Url::parse(&base).map_err(|e| ClientError::Forbidden(format!("{host}: {e}")))?;
        self.policy.check_url(&url).map_err(ClientError::Forbidden)?;
        Ok(base)
    }

    pub(crate) fn authorize(
        &self,
        request: RequestBuilder,
        registry: &str,
        scope: &str,
        credentials: &Credentials,
    ) -> RequestBuilder {
        if let Some(token) = self.tokens.get(registry, scope, credentials) {
            return request.bearer_auth(token);
        }
        match credentials {
            Credentials::Basic { username, password }
                if self.basic.lock().unwrap_or_else(|e| e.into_inner()).contains(registry) =>
            {
                request.basic_auth(username, Some(password))
            }
            _ => request,
        }
    }

    /// Gets a token for `scope` from the realm (with the credentials, if any) and caches it.
    async fn fetch_token(
        &self,
        target: &Target<'_>,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<(), ClientError> {
        let registry = target.registry;
        let protocol =
            |message: String| ClientError::Protocol { registry: registry.to_string(), message };
        let mut url =
            Url::parse(realm).map_err(|e| protocol(format!("token realm {realm:?}: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(protocol(format!("token realm {realm:?} is not an http(s) URL")));
        }
        if url.scheme() == "http" && !self.registry_settings(registry).insecure {
            return Err(ClientError::Forbidden(format!(
                "{registry} sends us for tokens to plain HTTP ({realm}); list it as insecure to allow that"
            )));
        }
        self.policy.check_url(&url).map_err(ClientError::Forbidden)?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for scope in scope.into_iter().flat_map(|s| s.split(' ')) {
                query.append_pair("scope", scope);
            }
        }
        let mut request = self.http(registry).get(url).header(ACCEPT, "application/json");
        if let Credentials::Basic { username, password } = target.credentials {
            request = request.basic_auth(username, Some(password));
        }
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            registry: registry.to_string(),
            message: format!("token service: {}", describe(&e)),
        })?;
        match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(unauthorized(target)),
            StatusCode::TOO_MANY_REQUESTS => {
                let wait = retry_after(response.headers()).unwrap_or(Duration::from_secs(60));
                let retry_at = SystemTime::now() + wait;
                return Err(ClientError::RateLimited { registry: registry.to_string(), retry_at });
            }
            status if !status.is_success() => {
                return Err(ClientError::Upstream {
                    registry: registry.to_string(),
                    status: status.as_u16(),
                    message: "the token service refused".into(),
                });
            }
            _ => {}
        }
        let body = read_bounded(response, 1 << 20, "token", registry).await?;
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|e| protocol(format!("token answer: {e}")))?;
        let token = answer
            .token
            .or(answer.access_token)
            .ok_or_else(|| protocol("token answer without a token".into()))?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60).clamp(10, 86_400));
        self.tokens.put(registry, scope.unwrap_or(""), target.credentials, token, lifetime);
        Ok(())
    }

    /// Turns a failure status into the error a person understands.
    pub(crate) async fn expect_success(
        &self,
        target: &Target<'_>,
        response: Response,
        what: &str,
    ) -> Result<Response, ClientError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let registry = target.registry.to_string();
        if status == StatusCode::NOT_FOUND {
            return Err(ClientError::NotFound { what: what.to_string() });
        }
        if status == StatusCode::FORBIDDEN {
            return Err(match target.credentials.is_anonymous() {
                true => unauthorized(target),
                false => denied(target),
            });
        }
        let body = read_bounded(response, 64 << 10, what, &registry).await.unwrap_or_default();
        let message = registry_message(&body).unwrap_or_else(|| what.to_string());
        Err(ClientError::Upstream { registry, status: status.as_u16(), message })
    }
}

fn denied(target: &Target<'_>) -> ClientError {
    ClientError::Denied {
        registry: target.registry.to_string(),
        repository: target.repository.to_string(),
    }
}

fn unauthorized(target: &Target<'_>) -> ClientError {
    ClientError::Unauthorized {
        registry: target.registry.to_string(),
        anonymous: target.credentials.is_anonymous(),
    }
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

#[derive(serde::Deserialize)]
struct TagList {
    tags: Option<Vec<String>>,
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `application/json; charset=utf-8` → `application/json`.
fn media_type_of(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_string()
}

fn body_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct WithMediaType {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<WithMediaType>(bytes).ok()?.media_type
}

fn digest_of(like: &Digest, bytes: &[u8]) -> Digest {
    let mut hasher = Hasher::new(like.algorithm());
    hasher.update(bytes);
    hasher.finish()
}

/// Reads a whole answer, refusing one over `limit` bytes without reading it all.
async fn read_bounded(
    response: Response,
    limit: u64,
    what: &str,
    registry: &str,
) -> Result<Bytes, ClientError> {
    let too_large = |size: u64| ClientError::TooLarge { what: what.to_string(), size, limit };
    if let Some(length) = response.content_length().filter(|&l| l > limit) {
        return Err(too_large(length));
    }
    let mut body = BytesMut::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ClientError::Unreachable {
            registry: registry.to_string(),
            message: describe(&e),
        })?;
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(too_large((body.len() + chunk.len()) as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The message of a registry's error body (`{"errors":[{"message":…}]}`).
fn registry_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = value["errors"][0]["message"].as_str()?;
    Some(message.chars().take(300).collect())
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = header(headers, RETRY_AFTER.as_str())?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// The `rel="next"` target of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next")
            .then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

/// The path and query of an absolute or relative link.
fn path_and_query(link: &str) -> String {
    match Url::parse(link) {
        Ok(url) => match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        },
        Err(_) => link.to_string(),
    }
}

/// A refusal by our own policy (a private address): trying again will not help.
fn is_refusal(error: &reqwest::Error) -> bool {
    describe(error).contains("private or local address")
}

/// A certificate the client does not trust (self-signed, expired, for another name).
fn is_untrusted(error: &reqwest::Error) -> bool {
    let text = describe(error);
    error.is_connect() && (text.contains("certificate") || text.contains("UnknownIssuer"))
}

/// A reqwest error with its causes, which hold what actually went wrong.
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_retry_after() {
        let link = r#"</v2/a/tags/list?last=b&n=2>; rel="next""#;
        assert_eq!(next_link(link).as_deref(), Some("/v2/a/tags/list?last=b&n=2"));
        assert_eq!(next_link(r#"<x>; rel="prev""#), None);
        assert_eq!(
            path_and_query("https://other.example/v2/a/tags/list?n=2"),
            "/v2/a/tags/list?n=2"
        );
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().expect("value"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("value"));
        assert_eq!(retry_after(&headers), Some(Duration::ZERO), "a date in the past");
        assert_eq!(media_type_of("application/json; charset=utf-8"), "application/json");
        assert_eq!(
            registry_message(br#"{"errors":[{"code":"X","message":"nope"}]}"#).as_deref(),
            Some("nope")
        );
    }
}
