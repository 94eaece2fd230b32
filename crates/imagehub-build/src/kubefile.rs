//! Kubefiles: the Dockerfile subset cluster images are built from. `FROM` (scratch or a
//! base image), `COPY`, `ENV`, `LABEL`, `CMD`, `ENTRYPOINT`, `ARG`, comments and line
//! continuations; nothing runs, so `RUN` and every other instruction is refused with
//! the file, the line and the reason. Written by hand: the Dockerfile parsers on
//! crates.io either pull in BuildKit's whole grammar or lose line numbers, and this
//! subset is a page of code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A parsed Kubefile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubefile {
    pub base: Base,
    pub instructions: Vec<Instruction>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// A base image whose layers the cluster image starts from.
    Image(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `COPY [--chmod=MODE] SRC... DEST`, sources relative to the build context.
    Copy {
        sources: Vec<String>,
        destination: String,
        chmod: Option<u32>,
        line: usize,
    },
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
}

/// Why a Kubefile was refused: where, and in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct KubefileError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl Kubefile {
    /// Parses `text` (read from `file`, for messages) with the build arguments `args`.
    pub fn parse(
        file: &Path,
        text: &str,
        args: &HashMap<String, String>,
    ) -> Result<Kubefile, KubefileError> {
        let fail = |line: usize, message: String| KubefileError {
            file: file.to_path_buf(),
            line,
            message,
        };
        let mut scope = Scope::default();
        let mut base = None;
        let mut instructions = Vec::new();
        for (line, text) in logical_lines(text) {
            let (keyword, rest) = match text.split_once(char::is_whitespace) {
                Some((keyword, rest)) => (keyword, rest.trim()),
                None => (text.as_str(), ""),
            };
            let keyword = keyword.to_ascii_uppercase();
            if base.is_none() && !matches!(keyword.as_str(), "FROM" | "ARG") {
                return Err(fail(
                    line,
                    format!("{keyword} before FROM: a Kubefile starts with FROM"),
                ));
            }
            let parsed = match keyword.as_str() {
                "ARG" => scope.arg(rest, args).map(|()| None),
                "FROM" if base.is_some() => {
                    Err("a second FROM: cluster images are built in one stage".to_string())
                }
                "FROM" => from(rest, &scope).map(|b| {
                    base = Some(b);
                    None
                }),
                "COPY" => copy(rest, &scope, line).map(Some),
                "ENV" => pairs(rest, &scope, "ENV").map(|pairs| {
                    for (key, value) in &pairs {
                        scope.env.insert(key.clone(), value.clone());
                    }
                    Some(Instruction::Env(pairs))
                }),
                "LABEL" => pairs(rest, &scope, "LABEL").map(|p| Some(Instruction::Label(p))),
                "CMD" => command(rest).map(|c| Some(Instruction::Cmd(c))),
                "ENTRYPOINT" => command(rest).map(|c| Some(Instruction::Entrypoint(c))),
                "RUN" => Err("RUN is not supported: cluster images are built without running \
                              containers; do the work in init.sh or at `sealos run`"
                    .to_string()),
                other => Err(format!(
                    "{other} is not supported in a Kubefile (FROM, COPY, ENV, LABEL, CMD, \
                     ENTRYPOINT and ARG are)"
                )),
            };
            if let Some(instruction) = parsed.map_err(|m| fail(line, m))? {
                instructions.push(instruction);
            }
        }
        let base = base.ok_or_else(|| fail(1, "no FROM: start with FROM scratch".into()))?;
        Ok(Kubefile { base, instructions })
    }
}

/// The lines of `text` with continuations joined and comments dropped, each with the
/// number of its first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_none()) {
            continue; // a comment inside a continuation does not end it
        }
        let (content, continues) = match trimmed.strip_suffix('\\') {
            Some(content) => (content, true),
            None => (trimmed, false),
        };
        let (start, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        if !joined.is_empty() && !content.is_empty() {
            joined.push(' ');
        }
        joined.push_str(content.trim());
        match continues {
            true => pending = Some((start, joined)),
            false if joined.is_empty() => {}
            false => lines.push((start, joined)),
        }
    }
    if let Some((start, joined)) = pending.filter(|(_, j)| !j.is_empty()) {
        lines.push((start, joined));
    }
    lines
}

/// The variables a line may use: `ARG`s and the `ENV`s before it.
#[derive(Default)]
struct Scope {
    args: HashMap<String, String>,
    env: HashMap<String, String>,
}

impl Scope {
    fn get(&self, name: &str) -> Option<&str> {
        self.env.get(name).or_else(|| self.args.get(name)).map(String::as_str)
    }

    /// `ARG NAME[=default]`: the value given to the build, else the default.
    fn arg(&mut self, rest: &str, given: &HashMap<String, String>) -> Result<(), String> {
        let (name, default) = match rest.split_once('=') {
            Some((name, default)) => (name.trim(), Some(unquote(default.trim()))),
            None => (rest.trim(), None),
        };
        if !is_name(name) {
            return Err(format!("ARG {name:?}: a name is letters, digits and _"));
        }
        if let Some(value) = given.get(name).cloned().or(default) {
            self.args.insert(name.to_string(), value);
        }
        Ok(())
    }
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

fn unquote(value: &str) -> String {
    words(value, &Scope::default()).map(|w| w.concat()).unwrap_or_else(|_| value.to_string())
}

fn from(rest: &str, scope: &Scope) -> Result<Base, String> {
    let words = words(rest, scope)?;
    match words.as_slice() {
        [image] if image.eq_ignore_ascii_case("scratch") => Ok(Base::Scratch),
        [image] => Ok(Base::Image(image.clone())),
        [_, as_word, _] if as_word.eq_ignore_ascii_case("as") => {
            Err("FROM … AS: cluster images are built in one stage".into())
        }
        _ => Err("FROM takes one image: FROM scratch, or FROM registry/name:tag".into()),
    }
}

fn copy(rest: &str, scope: &Scope, line: usize) -> Result<Instruction, String> {
    let mut chmod = None;
    let mut rest = rest;
    while let Some(flag) = rest.strip_prefix("--") {
        let (flag, after) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
        match flag.split_once('=') {
            Some(("chmod", mode)) => {
                let mode = u32::from_str_radix(mode, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| format!("--chmod={mode}: give an octal mode such as 0755"))?;
                chmod = Some(mode);
            }
            _ => {
                return Err(format!(
                    "COPY --{flag} is not supported: only --chmod (files are owned by root and \
                     come from the build context)"
                ));
            }
        }
        rest = after.trim_start();
    }
    let mut paths = match rest.starts_with('[') {
        true => serde_json::from_str::<Vec<String>>(rest)
            .map_err(|e| format!("COPY [\"src\", …, \"dest\"]: {e}"))?
            .into_iter()
            .map(|p| substitute(&p, scope))
            .collect::<Result<Vec<_>, _>>()?,
        false => words(rest, scope)?,
    };
    if paths.len() < 2 {
        return Err("COPY needs a source and a destination".into());
    }
    let destination = paths.pop().unwrap_or_default();
    Ok(Instruction::Copy { sources: paths, destination, chmod, line })
}

/// `KEY=VALUE …` (or the old `KEY VALUE` form), values unquoted and substituted.
fn pairs(rest: &str, scope: &Scope, what: &str) -> Result<Vec<(String, String)>, String> {
    let words = words(rest, scope)?;
    let first = words.first().ok_or_else(|| format!("{what} needs KEY=VALUE"))?;
    if !first.contains('=') {
        // `ENV KEY value with spaces`: the rest of the line is the value.
        let value = words[1..].join(" ");
        return Ok(vec![(first.clone(), value)]);
    }
    words
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => Err(format!("{what} {word:?}: give KEY=VALUE")),
        })
        .collect()
}

/// `["exec", "form"]`, or a shell form run by `/bin/sh -c`.
fn command(rest: &str) -> Result<Vec<String>, String> {
    if rest.starts_with('[') {
        return serde_json::from_str(rest).map_err(|e| format!("[\"a\", \"b\"]: {e}"));
    }
    if rest.is_empty() {
        return Err("an empty command".into());
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), rest.into()])
}

/// Splits `text` into words as a shell would for these instructions: whitespace
/// separates, quotes group (variables are expanded outside single quotes), a backslash
/// escapes the next character.
fn words(text: &str, scope: &Scope) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current: Option<String> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(word) = current.take() {
                    words.push(word);
                }
            }
            '\'' => {
                let word = current.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("a quote (') is not closed".into()),
                    }
                }
            }
            '"' => {
                let mut quoted = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => quoted.push_str(&escape(chars.next())),
                        Some(c) => quoted.push(c),
                        None => return Err("a quote (\") is not closed".into()),
                    }
                }
                current.get_or_insert_with(String::new).push_str(&substitute(&quoted, scope)?);
            }
            '\\' => {
                let word = current.get_or_insert_with(String::new);
                word.extend(chars.next());
            }
            '$' => {
                let mut variable = String::from("$");
                if chars.peek() == Some(&'{') {
                    let mut depth = 0;
                    for c in chars.by_ref() {
                        variable.push(c);
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 1 => break,
                            '}' => depth -= 1,
                            _ => {}
                        }
                    }
                } else {
                    while let Some(&c) =
                        chars.peek().filter(|c| c.is_ascii_alphanumeric() || **c == '_')
                    {
                        variable.push(c);
                        chars.next();
                    }
                }
                current.get_or_insert_with(String::new).push_str(&substitute(&variable, scope)?);
            }
            c => current.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(current);
    Ok(words)
}

/// An escaped character, kept escaped (`\$`) so that `substitute` leaves it alone.
fn escape(next: Option<char>) -> String {
    match next {
        Some('$') => "\\$".into(),
        Some(c) => c.to_string(),
        None => String::new(),
    }
}

/// Replaces `$NAME`, `${NAME}` and `${NAME:-default}` in `text` (`\$` is a `$`).
fn substitute(text: &str, scope: &Scope) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(['$', '\\']) {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if rest[at..].starts_with('\\') {
            // Only `\$` reaches here escaped; any other backslash stays.
            match after.strip_prefix('$') {
                Some(tail) => {
                    out.push('$');
                    rest = tail;
                }
                None => {
                    out.push('\\');
                    rest = after;
                }
            }
            continue;
        }
        if let Some(braced) = after.strip_prefix('{') {
            let end = closing_brace(braced).ok_or("${ is not closed")?;
            let (name, default) = match braced[..end].split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (&braced[..end], None),
            };
            if !is_name(name) {
                return Err(format!("${{{}}}: not a variable name", &braced[..end]));
            }
            match (scope.get(name).filter(|v| !v.is_empty()), default) {
                (Some(value), _) => out.push_str(value),
                (None, Some(default)) => out.push_str(&substitute(default, scope)?),
                (None, None) => {}
            }
            rest = &braced[end + 1..];
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            match len {
                0 => out.push('$'),
                _ => out.push_str(scope.get(&after[..len]).unwrap_or("")),
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Where the `}` closing an opened `${` is in `text` (which follows the `{`).
fn closing_brace(text: &str) -> Option<usize> {
    let mut depth = 0;
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(at),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Kubefile, KubefileError> {
        let args = HashMap::from([("VERSION".to_string(), "1.23.1".to_string())]);
        Kubefile::parse(Path::new("Kubefile"), text, &args)
    }

    #[test]
    fn the_public_recipes_subset_parses() {
        let kubefile = parse(
            "# a comment\nFROM scratch\nARG VERSION\nARG NAME=nginx\n\
             ENV NAME=${NAME} VERSION=$VERSION \\\n    PORT=${PORT:-80}\n\
             LABEL sealos.io.type=\"application\" \\\n  # inside a continuation\n  description='an app'\n\
             COPY charts charts\nCOPY --chmod=0755 nginx.sh registry ./\n\
             CMD [\"helm upgrade -i nginx charts/nginx\"]\n",
        )
        .expect("parses");
        assert_eq!(kubefile.base, Base::Scratch);
        assert_eq!(
            kubefile.instructions,
            vec![
                Instruction::Env(vec![
                    ("NAME".into(), "nginx".into()),
                    ("VERSION".into(), "1.23.1".into()),
                    ("PORT".into(), "80".into()),
                ]),
                Instruction::Label(vec![
                    ("sealos.io.type".into(), "application".into()),
                    ("description".into(), "an app".into()),
                ]),
                Instruction::Copy {
                    sources: vec!["charts".into()],
                    destination: "charts".into(),
                    chmod: None,
                    line: 10,
                },
                Instruction::Copy {
                    sources: vec!["nginx.sh".into(), "registry".into()],
                    destination: "./".into(),
                    chmod: Some(0o755),
                    line: 11,
                },
                Instruction::Cmd(vec!["helm upgrade -i nginx charts/nginx".into()]),
            ]
        );
    }

    #[test]
    fn variables_quotes_and_escapes() {
        let kubefile = parse(
            "FROM scratch\nENV A=1\nENV B=\"$A two\" C='$A' D=\\$A E=${MISSING:-${A}x} F=${MISSING}\n\
             ENV G old form value\nCMD kubectl apply -f manifests\n",
        )
        .expect("parses");
        assert_eq!(
            kubefile.instructions[1],
            Instruction::Env(vec![
                ("B".into(), "1 two".into()),
                ("C".into(), "$A".into()),
                ("D".into(), "$A".into()),
                ("E".into(), "1x".into()),
                ("F".into(), String::new()),
            ])
        );
        assert_eq!(
            kubefile.instructions[2],
            Instruction::Env(vec![("G".into(), "old form value".into())])
        );
        assert_eq!(
            kubefile.instructions[3],
            Instruction::Cmd(vec![
                "/bin/sh".into(),
                "-c".into(),
                "kubectl apply -f manifests".into()
            ])
        );
    }

    #[test]
    fn what_would_run_or_is_unknown_is_refused_with_file_and_line() {
        let refused =
            parse("FROM scratch\nCOPY a a\n\nRUN apt-get install -y curl\n").expect_err("RUN");
        assert_eq!(refused.line, 4);
        assert!(refused.to_string().starts_with("Kubefile:4: RUN is not supported"), "{refused}");
        assert!(refused.message.contains("without running containers"), "{refused}");
        for (text, words) in [
            ("FROM scratch\nWORKDIR /x\n", "WORKDIR is not supported"),
            ("COPY a b\n", "before FROM"),
            ("FROM scratch\nFROM scratch\n", "one stage"),
            ("FROM golang AS build\n", "one stage"),
            ("FROM scratch\nCOPY --from=build a b\n", "--from=build is not supported"),
            ("FROM scratch\nCOPY --chmod=9 a b\n", "octal"),
            ("FROM scratch\nCOPY onlyone\n", "a source and a destination"),
            ("FROM scratch\nENV A=\"open\n", "not closed"),
            ("", "no FROM"),
        ] {
            let refused = parse(text).expect_err(text);
            assert!(refused.message.contains(words), "{text:?}: {refused}");
        }
    }

    #[test]
    fn a_base_image_and_json_copy() {
        let kubefile =
            parse("ARG BASE=labring/kubernetes:v1.25.0\nFROM ${BASE}\nCOPY [\"a b\", \"c\"]\n")
                .expect("parses");
        assert_eq!(kubefile.base, Base::Image("labring/kubernetes:v1.25.0".into()));
        assert!(
            matches!(&kubefile.instructions[0], Instruction::Copy { sources, .. } if sources == &["a b"])
        );
    }
}
