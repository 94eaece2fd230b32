//! The repositories `search` fills the hub with, and the queries it times, both derived
//! from a seed so every run (and every server) sees the same catalogue.
//!
//! Repository `i` of `n` is `bench/<w1>-<w2>-<i>`, `w1` and `w2` drawn uniformly from
//! [`VOCAB`]; its README front matter has 3–6 keywords drawn from [`VOCAB`] by a Zipf
//! law (rank 0 lands in about half the repositories, rank 199 in a few hundred of 50,000)
//! and a description of a few words from [`DESC_WORDS`] (uniform, each in ~10 %) plus
//! one of its keywords. Fifty repositories spread evenly over the catalogue also carry
//! one of the ten [`RARE`] words (five repositories each) in their description.

use bytes::Bytes;

use crate::data::{Blob, Rng};

/// Keyword and name vocabulary, most frequent first (the Zipf rank is the index).
pub const VOCAB: [&str; 200] = [
    "linux",
    "server",
    "database",
    "web",
    "python",
    "alpine",
    "debian",
    "nodejs",
    "golang",
    "java",
    "cache",
    "proxy",
    "monitoring",
    "logging",
    "queue",
    "storage",
    "security",
    "build",
    "testing",
    "network",
    "postgres",
    "redis",
    "nginx",
    "mysql",
    "mongodb",
    "kafka",
    "rabbitmq",
    "elasticsearch",
    "grafana",
    "prometheus",
    "ubuntu",
    "fedora",
    "rust",
    "ruby",
    "php",
    "dotnet",
    "kotlin",
    "scala",
    "haskell",
    "erlang",
    "elixir",
    "clojure",
    "perl",
    "lua",
    "swift",
    "dart",
    "julia",
    "fortran",
    "cobol",
    "zig",
    "backup",
    "restore",
    "sync",
    "mirror",
    "registry",
    "gateway",
    "router",
    "loadbalancer",
    "firewall",
    "vpn",
    "dns",
    "dhcp",
    "ntp",
    "smtp",
    "imap",
    "ldap",
    "kerberos",
    "oauth",
    "saml",
    "vault",
    "secrets",
    "certs",
    "tls",
    "ssh",
    "git",
    "svn",
    "mercurial",
    "jenkins",
    "gitlab",
    "gitea",
    "drone",
    "tekton",
    "argo",
    "flux",
    "helm",
    "kustomize",
    "terraform",
    "ansible",
    "puppet",
    "chef",
    "salt",
    "packer",
    "vagrant",
    "consul",
    "nomad",
    "etcd",
    "zookeeper",
    "cassandra",
    "scylla",
    "cockroach",
    "sqlite",
    "mariadb",
    "oracle",
    "clickhouse",
    "influxdb",
    "timescale",
    "questdb",
    "druid",
    "pinot",
    "presto",
    "trino",
    "spark",
    "flink",
    "beam",
    "airflow",
    "dagster",
    "prefect",
    "luigi",
    "celery",
    "sidekiq",
    "resque",
    "nats",
    "pulsar",
    "mosquitto",
    "mqtt",
    "amqp",
    "grpc",
    "graphql",
    "rest",
    "soap",
    "websocket",
    "http",
    "tcp",
    "udp",
    "quic",
    "envoy",
    "traefik",
    "haproxy",
    "caddy",
    "apache",
    "tomcat",
    "jetty",
    "wildfly",
    "django",
    "flask",
    "fastapi",
    "rails",
    "sinatra",
    "laravel",
    "symfony",
    "spring",
    "quarkus",
    "micronaut",
    "express",
    "nestjs",
    "nextjs",
    "nuxt",
    "svelte",
    "react",
    "vue",
    "angular",
    "ember",
    "webpack",
    "vite",
    "esbuild",
    "babel",
    "eslint",
    "prettier",
    "jest",
    "mocha",
    "pytest",
    "junit",
    "selenium",
    "cypress",
    "playwright",
    "puppeteer",
    "chrome",
    "firefox",
    "wasm",
    "llvm",
    "gcc",
    "clang",
    "cmake",
    "bazel",
    "gradle",
    "maven",
    "sbt",
    "cargo",
    "npm",
    "yarn",
    "pnpm",
    "pip",
    "poetry",
    "conda",
    "jupyter",
    "pandas",
    "numpy",
    "pytorch",
    "tensorflow",
    "onnx",
];

/// Words found only in descriptions (and the README body), drawn uniformly.
pub const DESC_WORDS: [&str; 40] = [
    "lightweight",
    "minimal",
    "hardened",
    "distroless",
    "official",
    "community",
    "experimental",
    "stable",
    "fast",
    "small",
    "secure",
    "portable",
    "multiarch",
    "rootless",
    "reproducible",
    "patched",
    "slim",
    "full",
    "debug",
    "production",
    "development",
    "nightly",
    "legacy",
    "modern",
    "scalable",
    "resilient",
    "embedded",
    "headless",
    "standalone",
    "clustered",
    "replicated",
    "sharded",
    "tuned",
    "preconfigured",
    "batteries",
    "compact",
    "verified",
    "signed",
    "audited",
    "curated",
];

/// Words each in exactly five repositories (in the description).
pub const RARE: [&str; 10] = [
    "quokka",
    "zeugma",
    "xylograph",
    "quillwort",
    "jacquard",
    "fjord",
    "wombat",
    "kumquat",
    "sphinx",
    "bivouac",
];

/// Repositories that carry a rare word (ten words × five).
const RARE_REPOS: u64 = 50;

/// One repository's content.
#[derive(Debug, Clone)]
pub struct RepoDoc {
    pub name: String,
    pub keywords: Vec<String>,
    pub description: String,
}

/// The deterministic catalogue of `n` repositories.
pub struct Corpus {
    pub n: u64,
    pub seed: u64,
    /// Cumulative Zipf weights over `VOCAB` (s = 1), normalised to 1.
    zipf: Vec<f64>,
}

fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn pick<'a>(rng: &mut Rng, words: &[&'a str]) -> &'a str {
    words[(rng.next_u64() % words.len() as u64) as usize]
}

impl Corpus {
    pub fn new(n: u64, seed: u64) -> Self {
        let weights: Vec<f64> = (0..VOCAB.len()).map(|r| 1.0 / (r as f64 + 1.0)).collect();
        let sum: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let zipf = weights.iter().map(|w| {
            acc += w / sum;
            acc
        });
        Self { n, seed, zipf: zipf.collect() }
    }

    fn zipf_word(&self, rng: &mut Rng) -> &'static str {
        let u = unit(rng);
        let rank = self.zipf.partition_point(|&c| c < u).min(VOCAB.len() - 1);
        VOCAB[rank]
    }

    /// The rare word of repository `i`, if it carries one.
    pub fn rare_word(&self, i: u64) -> Option<&'static str> {
        let stride = (self.n / RARE_REPOS).max(1);
        let special = i % stride == stride / 2 && i / stride < RARE_REPOS;
        special.then(|| RARE[((i / stride) % RARE.len() as u64) as usize])
    }

    /// Number of repositories carrying a given rare word.
    pub fn rare_count(&self, word: &str) -> u64 {
        let stride = (self.n / RARE_REPOS).max(1);
        (0..RARE_REPOS.min(self.n))
            .map(|s| s * stride + stride / 2)
            .filter(|&i| i < self.n && self.rare_word(i) == Some(word))
            .count() as u64
    }

    fn rng(&self, i: u64, salt: u64) -> Rng {
        Rng::new(
            self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ i.wrapping_mul(0xD6E8_FEB8_6659_FD93)
                ^ salt,
        )
    }

    /// The name of repository `i` (`bench/<w1>-<w2>-<i>`).
    pub fn name(&self, i: u64) -> String {
        let mut rng = self.rng(i, 1);
        let w1 = pick(&mut rng, &VOCAB);
        let w2 = pick(&mut rng, &VOCAB);
        format!("bench/{w1}-{w2}-{i}")
    }

    /// Repository `i`'s name, keywords and description.
    pub fn doc(&self, i: u64) -> RepoDoc {
        let mut rng = self.rng(i, 2);
        let want = 3 + (rng.next_u64() % 4) as usize;
        let mut keywords: Vec<String> = Vec::with_capacity(want);
        while keywords.len() < want {
            let w = self.zipf_word(&mut rng);
            if !keywords.iter().any(|k| k == w) {
                keywords.push(w.to_string());
            }
        }
        let mut words: Vec<&str> = Vec::new();
        for _ in 0..(2 + rng.next_u64() % 3) {
            words.push(pick(&mut rng, &DESC_WORDS));
        }
        words.push(&keywords[0]);
        words.push(
            ["image", "service", "toolkit", "runtime", "stack"][(rng.next_u64() % 5) as usize],
        );
        if let Some(rare) = self.rare_word(i) {
            words.push("with");
            words.push(rare);
        }
        let mut description = words.join(" ");
        if let Some(first) = description.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        RepoDoc { name: self.name(i), keywords, description }
    }

    /// The text of repository `i`'s `/README.md`.
    pub fn readme(doc: &RepoDoc) -> String {
        format!(
            "---\nkeywords: [{}]\ndescription: {}\n---\n# {}\n\n{}.\n\nPull it with `docker pull {}:latest`.\n",
            doc.keywords.join(", "),
            doc.description,
            doc.name,
            doc.description,
            doc.name
        )
    }

    /// Repository `i`'s image: a one-file layer holding its README, and a unique config.
    pub fn image(&self, i: u64) -> (RepoDoc, Blob, Blob) {
        let doc = self.doc(i);
        let layer = Blob::from_chunks(vec![Bytes::from(ustar(&[(
            "README.md",
            Self::readme(&doc).as_bytes(),
        )]))]);
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z","rootfs":{{"type":"layers","diff_ids":["{}"]}},"config":{{"Labels":{{"org.imagehub.bench.repo":"{}"}}}}}}"#,
            layer.digest, doc.name
        );
        let config = Blob::from_chunks(vec![Bytes::from(config)]);
        (doc, layer, config)
    }

    /// The timed query mix: a few queries per kind, rotated.
    pub fn queries(&self) -> Vec<QueryKind> {
        let n = self.n;
        let exact = (0..10).map(|k| self.name((n * k / 10 + 3).min(n - 1))).collect();
        // What someone types before finishing a word: all but its last letter, 3 to 5 letters.
        let prefix = [5, 33, 61, 89, 117, 145, 173]
            .iter()
            .map(|&r| VOCAB[r][..(VOCAB[r].len() - 1).clamp(3, 5)].to_string())
            .collect();
        let keyword = (12..20).map(|r| VOCAB[r].to_string()).collect();
        let desc =
            [0, 5, 10, 15, 20, 25, 30, 35].iter().map(|&d| DESC_WORDS[d].to_string()).collect();
        let multi = vec![
            format!("{} {}", VOCAB[2], VOCAB[21]),
            format!("{} {}", VOCAB[4], VOCAB[142]),
            format!("{} {}", VOCAB[10], DESC_WORDS[8]),
            format!("{} {} {}", DESC_WORDS[2], VOCAB[3], "image"),
            format!("{} {}", VOCAB[23], VOCAB[7]),
        ];
        let rare = RARE.iter().map(|w| w.to_string()).collect();
        let common = vec![VOCAB[0].to_string(), VOCAB[1].to_string()];
        vec![
            QueryKind { key: "exact", label: "exact name", queries: exact },
            QueryKind { key: "prefix", label: "name prefix", queries: prefix },
            QueryKind { key: "keyword", label: "keyword", queries: keyword },
            QueryKind { key: "description", label: "description word", queries: desc },
            QueryKind { key: "multi", label: "multi-word", queries: multi },
            QueryKind { key: "rare", label: "rare word", queries: rare },
            QueryKind { key: "common", label: "very common word", queries: common },
        ]
    }
}

/// A kind of query and the queries of that kind.
#[derive(Debug, Clone)]
pub struct QueryKind {
    pub key: &'static str,
    pub label: &'static str,
    pub queries: Vec<String>,
}

/// A ustar archive of regular files (mode 0644, fixed mtime), each name under 100 bytes.
pub fn ustar(files: &[(&str, &[u8])]) -> Vec<u8> {
    fn octal(header: &mut [u8], offset: usize, len: usize, value: u64) {
        let text = format!("{value:0width$o}\0", width = len - 1);
        header[offset..offset + len].copy_from_slice(text.as_bytes());
    }
    let mut out = Vec::new();
    for (name, data) in files {
        let mut header = [0u8; 512];
        let name = &name.as_bytes()[..name.len().min(99)];
        header[..name.len()].copy_from_slice(name);
        octal(&mut header, 100, 8, 0o644);
        octal(&mut header, 108, 8, 0);
        octal(&mut header, 116, 8, 0);
        octal(&mut header, 124, 12, data.len() as u64);
        octal(&mut header, 136, 12, 1_700_000_000);
        header[148..156].copy_from_slice(b"        ");
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_shaped() {
        let c = Corpus::new(2000, 6);
        assert_eq!(c.doc(17).description, Corpus::new(2000, 6).doc(17).description);
        assert!(c.name(17).starts_with("bench/") && c.name(17).ends_with("-17"));
        let d = c.doc(17);
        assert!((3..=6).contains(&d.keywords.len()));
        for w in RARE {
            assert_eq!(c.rare_count(w), 5, "{w}");
        }
        let rare_docs = (0..2000).filter(|&i| c.doc(i).description.contains(RARE[0])).count();
        assert_eq!(rare_docs, 5);
        // The top keyword is common, a tail one is not.
        let top = (0..2000).filter(|&i| c.doc(i).keywords.iter().any(|k| k == VOCAB[0])).count();
        let tail = (0..2000).filter(|&i| c.doc(i).keywords.iter().any(|k| k == VOCAB[199])).count();
        assert!(top > 600 && tail < 40, "top {top} tail {tail}");
    }

    #[test]
    fn tar_is_well_formed() {
        let t = ustar(&[("README.md", b"hello")]);
        assert_eq!(t.len(), 512 + 512 + 1024);
        assert_eq!(&t[..9], b"README.md");
        assert_eq!(&t[512..517], b"hello");
        assert_eq!(&t[257..262], b"ustar");
    }
}
