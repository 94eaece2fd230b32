//! Which `/v2/` endpoint a path names. Repository names contain slashes, so routes are
//! recognised by their suffix (`/manifests/<ref>`, `/blobs/uploads/<id>`, …) with the
//! name being everything before it.

/// A `/v2/` endpoint with its raw (not yet validated) parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V2Route<'a> {
    Tags { name: &'a str },
    Manifest { name: &'a str, reference: &'a str },
    Referrers { name: &'a str, digest: &'a str },
    UploadStart { name: &'a str },
    Upload { name: &'a str, id: &'a str },
    Blob { name: &'a str, digest: &'a str },
}

/// Builds a route from the name and the part after its marker.
type BuildRoute<'a> = fn(&'a str, &'a str) -> V2Route<'a>;

impl<'a> V2Route<'a> {
    /// Parses the path after `/v2/`; `None` when it names no endpoint.
    pub fn parse(path: &'a str) -> Option<V2Route<'a>> {
        if let Some(name) = path.strip_suffix("/tags/list") {
            return Some(V2Route::Tags { name });
        }
        if let Some(name) =
            path.strip_suffix("/blobs/uploads/").or_else(|| path.strip_suffix("/blobs/uploads"))
        {
            return Some(V2Route::UploadStart { name });
        }
        // The last marker wins: a repository may itself be called `x/blobs/y`.
        let markers: [(&str, BuildRoute<'a>); 4] = [
            ("/blobs/uploads/", |name, id| V2Route::Upload { name, id }),
            ("/manifests/", |name, reference| V2Route::Manifest { name, reference }),
            ("/referrers/", |name, digest| V2Route::Referrers { name, digest }),
            ("/blobs/", |name, digest| V2Route::Blob { name, digest }),
        ];
        markers
            .iter()
            .filter_map(|(marker, build)| {
                let at = path.rfind(marker)?;
                let (name, rest) = (&path[..at], &path[at + marker.len()..]);
                (!rest.is_empty() && !rest.contains('/')).then(|| (at, build(name, rest)))
            })
            .max_by_key(|(at, route)| (*at, matches!(route, V2Route::Upload { .. })))
            .map(|(_, route)| route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, expected: Option<V2Route<'_>>) {
        assert_eq!(V2Route::parse(path), expected, "{path}");
    }

    #[test]
    fn parses_routes() {
        check("library/nginx/tags/list", Some(V2Route::Tags { name: "library/nginx" }));
        check("a/manifests/latest", Some(V2Route::Manifest { name: "a", reference: "latest" }));
        check("a/b/blobs/sha256:ab", Some(V2Route::Blob { name: "a/b", digest: "sha256:ab" }));
        check("a/blobs/uploads/", Some(V2Route::UploadStart { name: "a" }));
        check("a/blobs/uploads", Some(V2Route::UploadStart { name: "a" }));
        check("a/blobs/uploads/1234", Some(V2Route::Upload { name: "a", id: "1234" }));
        check("a/referrers/sha256:ab", Some(V2Route::Referrers { name: "a", digest: "sha256:ab" }));
        check(
            "x/blobs/y/manifests/v1",
            Some(V2Route::Manifest { name: "x/blobs/y", reference: "v1" }),
        );
        check(
            "x/manifests/y/blobs/sha256:1",
            Some(V2Route::Blob { name: "x/manifests/y", digest: "sha256:1" }),
        );
        check("x/manifests/y/tags/list", Some(V2Route::Tags { name: "x/manifests/y" }));
        check("a/manifests/", None);
        check("a/manifests/x/y", None);
        check("a/unknown/x", None);
    }
}
