#!/usr/bin/env python3
"""oras-py (PyPI "oras") against imagehub, run by the `oras` real-client test.

Usage: oras_check.py HOST REPO WORKDIR

1. pushes a file as an artifact (artifact type = config media type, as oras-py does it),
2. pushes a second artifact whose manifest has `subject` pointing at the first,
3. pulls the first artifact back and compares the file,
4. discovers the second through GET /v2/REPO/referrers/DIGEST (what `oras discover` does).

Any failed check raises; the traceback tells what went wrong. Prints "ok" at the end.
"""
import hashlib
import json
import os
import sys
import urllib.parse

import oras.client
import oras.oci

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
README_TYPE = "application/vnd.imagehub.test.readme.v1+json"
SIGNATURE_TYPE = "application/vnd.imagehub.test.signature.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check(condition: bool, what: str, detail=None):
    if not condition:
        raise AssertionError(f"{what}: {detail!r}" if detail is not None else what)


def main() -> int:
    host, repo, work = sys.argv[1:4]
    base = f"http://{host}/v2/{repo}"
    client = oras.client.OrasClient(hostname=host, insecure=True)
    os.makedirs(work, exist_ok=True)
    os.chdir(work)  # oras-py pushes paths relative to the working directory

    def manifest(reference: str) -> bytes:
        r = client.do_request(f"{base}/manifests/{reference}", "GET", headers={"Accept": MT_MANIFEST})
        check(r.status_code == 200, f"GET manifest {reference} status", (r.status_code, r.text))
        return r.content

    # 1. the artifact: one file; the artifact type is carried by the config media type
    payload = "# imagehub\n\nAn artifact pushed by oras-py.\n"
    with open("artifact.md", "w") as f:
        f.write(payload)
    with open("artifact-config.json", "w") as f:
        json.dump({"purpose": "imagehub real-client test"}, f)
    r = client.push(
        target=f"{host}/{repo}:v1",
        files=["artifact.md:text/markdown"],
        manifest_config=f"artifact-config.json:{README_TYPE}",
        manifest_annotations={"org.opencontainers.image.title": "readme artifact"},
    )
    check(r.status_code == 201, "push artifact status", (r.status_code, r.text))
    subject_bytes = manifest("v1")
    subject_digest = sha256(subject_bytes)
    check(
        r.headers.get("Docker-Content-Digest") == subject_digest,
        "Docker-Content-Digest of the artifact push",
        (r.headers.get("Docker-Content-Digest"), subject_digest),
    )
    subject_manifest = json.loads(subject_bytes)
    check(subject_manifest["config"]["mediaType"] == README_TYPE, "config media type", subject_manifest)

    # 2. a second artifact referring to the first through `subject`
    with open("signature.txt", "w") as f:
        f.write("signed: " + subject_digest + "\n")
    subject = oras.oci.Subject(mediaType=MT_MANIFEST, digest=subject_digest, size=len(subject_bytes))
    with open("signature-config.json", "w") as f:
        json.dump({"signer": "realclients"}, f)
    r = client.push(
        target=f"{host}/{repo}:signature",
        files=["signature.txt:text/plain"],
        manifest_config=f"signature-config.json:{SIGNATURE_TYPE}",
        manifest_annotations={"org.example.signed-by": "realclients"},
        subject=subject,
    )
    check(r.status_code == 201, "push referrer status", (r.status_code, r.text))
    check(
        r.headers.get("OCI-Subject") == subject_digest,
        "OCI-Subject header on the PUT of a manifest with subject (registry supports referrers)",
        dict(r.headers),
    )
    referrer_bytes = manifest("signature")
    referrer_digest = sha256(referrer_bytes)
    check(json.loads(referrer_bytes).get("subject", {}).get("digest") == subject_digest, "subject kept", referrer_bytes)

    # 3. pull the first artifact back
    files = client.pull(target=f"{host}/{repo}:v1", outdir=os.path.join(work, "pulled"))
    check([os.path.basename(f) for f in files] == ["artifact.md"], "pulled files", files)
    with open(files[0]) as f:
        check(f.read() == payload, "pulled artifact content differs")

    # 4. discover: GET /v2/<name>/referrers/<digest>
    def referrers(digest: str, query: str = ""):
        r = client.do_request(f"{base}/referrers/{digest}{query}", "GET", headers={"Accept": MT_INDEX})
        check(r.status_code == 200, f"GET referrers/{digest}{query} status", (r.status_code, r.text))
        content_type = r.headers.get("Content-Type", "").split(";")[0].strip()
        check(content_type == MT_INDEX, "referrers Content-Type", content_type)
        index = r.json()
        check(index.get("schemaVersion") == 2 and index.get("mediaType") == MT_INDEX, "referrers index", index)
        return index, r.headers

    index, _ = referrers(subject_digest)
    found = [d for d in index.get("manifests", []) if d.get("digest") == referrer_digest]
    check(len(found) == 1, "referrer listed once", index)
    d = found[0]
    check(d.get("mediaType") == MT_MANIFEST, "referrer mediaType", d)
    check(d.get("size") == len(referrer_bytes), "referrer size", d)
    check(d.get("artifactType") == SIGNATURE_TYPE, "referrer artifactType (from config.mediaType)", d)
    check((d.get("annotations") or {}).get("org.example.signed-by") == "realclients", "referrer annotations", d)
    check(len(index["manifests"]) == 1, "only one referrer", index)

    # (encoded as oras does: a raw "+" in a query string means a space)
    def by_type(artifact_type: str) -> str:
        return "?" + urllib.parse.urlencode({"artifactType": artifact_type})

    index, headers = referrers(subject_digest, by_type(SIGNATURE_TYPE))
    check([m["digest"] for m in index["manifests"]] == [referrer_digest], "filtered referrers", index)
    index, headers = referrers(subject_digest, by_type("application/vnd.imagehub.test.other+json"))
    if "artifactType" in headers.get("OCI-Filters-Applied", ""):
        check(index["manifests"] == [], "referrers filtered by another artifactType", index)

    # a digest nobody refers to: an empty index, not an error
    index, _ = referrers(referrer_digest)
    check(index.get("manifests") == [], "no referrers of the referrer", index)

    print("ok", subject_digest, referrer_digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
