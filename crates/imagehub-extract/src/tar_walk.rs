//! A streaming walk over a tar archive's entries that bounds what a hostile archive can
//! cost: extension headers (GNU long names and links, PAX records) are refused past
//! [`MAX_EXTENSION_BYTES`], and every byte and header goes through the caller's
//! reader, which counts them against a [`Budget`](crate::Budget).
//!
//! Written by hand because the `tar` crate reads GNU long-name and PAX headers whole into
//! memory whatever size they claim (a 1 MB layer declaring a 1 GiB long name made it
//! allocate over 3 GB), and its raw mode, which would let us see them first, no longer
//! applies PAX sizes, so it would lose its place in archives with large files. The
//! README search needs only each entry's name, its type and one file's bytes.

use std::io::{self, Read};

/// Largest extension header (GNU `L`/`K`, PAX `x`/`g`) read. Paths are at most 4 KiB on
/// Linux; PAX records for a path, a size and a few extended attributes fit easily.
pub const MAX_EXTENSION_BYTES: u64 = 16 * 1024;

const BLOCK: usize = 512;

/// What an entry is, as far as the README search cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    /// Links, devices, FIFOs, sparse files and anything else.
    Other,
}

/// One entry's header, with GNU and PAX extensions applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHeader {
    /// The path as stored (not normalised), with invalid UTF-8 replaced.
    pub path: String,
    pub kind: EntryKind,
    pub size: u64,
}

/// Walks the entries of the tar stream `inner`.
pub struct TarWalk<R> {
    inner: R,
    /// Bytes of the current entry's data, and of its padding, not yet read.
    unread: u64,
}

impl<R: Read> TarWalk<R> {
    pub fn new(inner: R) -> TarWalk<R> {
        TarWalk { inner, unread: 0 }
    }

    /// The next entry, skipping what is left of the current one; `None` at the end.
    pub fn next_entry(&mut self) -> io::Result<Option<EntryHeader>> {
        let mut long_name: Option<Vec<u8>> = None;
        let mut pax = Pax::default();
        loop {
            self.skip_rest()?;
            let mut block = [0u8; BLOCK];
            if !read_block(&mut self.inner, &mut block)? || block.iter().all(|b| *b == 0) {
                return match (long_name, pax.path) {
                    (None, None) => Ok(None),
                    _ => {
                        Err(invalid("an extension header describes an entry that does not follow"))
                    }
                };
            }
            let header = Header::parse(&block)?;
            match header.typeflag {
                b'L' | b'K' | b'x' | b'g' => {
                    let data = self.read_extension(&header)?;
                    match header.typeflag {
                        b'L' => long_name = Some(trim_nuls(data)),
                        b'x' => pax = Pax::parse(&data)?,
                        _ => {} // link targets and global records say nothing the search needs
                    }
                }
                _ => {
                    let size = pax.size.unwrap_or(header.size);
                    self.unread = size
                        .checked_add(padding(size))
                        .ok_or_else(|| invalid("entry size overflows"))?;
                    let path = pax.path.or(long_name).unwrap_or_else(|| header.path());
                    let path = String::from_utf8(path)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                    return Ok(Some(EntryHeader { path, kind: header.kind(), size }));
                }
            }
        }
    }

    /// Up to `max` bytes of the current entry's data (call before the next `next_entry`).
    pub fn read_data(&mut self, size: u64, max: usize) -> io::Result<Vec<u8>> {
        let wanted = size.min(max as u64);
        let mut data = Vec::with_capacity(wanted as usize);
        (&mut self.inner).take(wanted).read_to_end(&mut data)?;
        if (data.len() as u64) < wanted {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.unread -= wanted;
        Ok(data)
    }

    fn read_extension(&mut self, header: &Header) -> io::Result<Vec<u8>> {
        if header.size > MAX_EXTENSION_BYTES {
            return Err(invalid(format!(
                "an extension header ('{}') of {} bytes is over the {MAX_EXTENSION_BYTES}-byte limit",
                char::from(header.typeflag),
                header.size
            )));
        }
        self.unread = header.size + padding(header.size);
        self.read_data(header.size, MAX_EXTENSION_BYTES as usize)
    }

    fn skip_rest(&mut self) -> io::Result<()> {
        let skipped = io::copy(&mut (&mut self.inner).take(self.unread), &mut io::sink())?;
        if skipped < self.unread {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.unread = 0;
        Ok(())
    }
}

/// The fields of a 512-byte header block the walk uses.
struct Header<'a> {
    block: &'a [u8; BLOCK],
    typeflag: u8,
    size: u64,
}

impl<'a> Header<'a> {
    fn parse(block: &'a [u8; BLOCK]) -> io::Result<Header<'a>> {
        let stored =
            parse_octal(&block[148..156]).ok_or_else(|| invalid("unreadable header checksum"))?;
        // The checksum counts its own field as spaces; some old writers summed signed bytes.
        let unsigned: u64 = block
            .iter()
            .enumerate()
            .map(|(i, b)| if (148..156).contains(&i) { 32 } else { u64::from(*b) })
            .sum();
        let signed: i64 = block
            .iter()
            .enumerate()
            .map(|(i, b)| if (148..156).contains(&i) { 32 } else { i64::from(*b as i8) })
            .sum();
        if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
            return Err(invalid("header checksum mismatch"));
        }
        let size = parse_size(&block[124..136]).ok_or_else(|| invalid("unreadable entry size"))?;
        Ok(Header { block, typeflag: block[156], size })
    }

    /// `name`, after `prefix` in the ustar format (GNU headers use those bytes for times).
    fn path(&self) -> Vec<u8> {
        let name = until_nul(&self.block[..100]);
        let ustar = &self.block[257..263] == b"ustar\0";
        let prefix = until_nul(&self.block[345..500]);
        if ustar && !prefix.is_empty() { [prefix, b"/", name].concat() } else { name.to_vec() }
    }

    fn kind(&self) -> EntryKind {
        match self.typeflag {
            b'0' | 0 | b'7' => EntryKind::File,
            b'5' => EntryKind::Directory,
            _ => EntryKind::Other,
        }
    }
}

/// The PAX records the walk applies to the next entry.
#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    size: Option<u64>,
}

impl Pax {
    /// Records are `"<length> <key>=<value>\n"`, the length counting the whole record.
    fn parse(mut data: &[u8]) -> io::Result<Pax> {
        let mut pax = Pax::default();
        while !data.is_empty() && data[0] != 0 {
            let space = data
                .iter()
                .position(|b| *b == b' ')
                .ok_or_else(|| invalid("malformed PAX record"))?;
            let len: usize = std::str::from_utf8(&data[..space])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| invalid("malformed PAX record length"))?;
            if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
                return Err(invalid("malformed PAX record"));
            }
            let record = &data[space + 1..len - 1];
            if let Some(eq) = record.iter().position(|b| *b == b'=') {
                let (key, value) = (&record[..eq], &record[eq + 1..]);
                match key {
                    b"path" => pax.path = Some(value.to_vec()),
                    b"size" => {
                        let size = std::str::from_utf8(value)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| invalid("malformed PAX size"))?;
                        pax.size = Some(size);
                    }
                    _ => {}
                }
            }
            data = &data[len..];
        }
        Ok(pax)
    }
}

/// Reads one block; `false` at a clean end of stream.
fn read_block(reader: &mut impl Read, block: &mut [u8; BLOCK]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < BLOCK {
        match reader.read(&mut block[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(invalid("the archive ends inside a header")),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Octal digits, possibly surrounded by spaces and NULs.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let digits = std::str::from_utf8(until_nul(field)).ok()?.trim();
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// Octal, or GNU's base-256 for sizes of 8 GiB and more (high bit of the first byte set).
fn parse_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 == 0 {
        return parse_octal(field);
    }
    if field[0] == 0xff {
        return None; // negative
    }
    let bytes = &field[1..];
    if field[0] & 0x7f != 0 || bytes[..bytes.len() - 8].iter().any(|b| *b != 0) {
        return None; // more than 64 bits
    }
    Some(u64::from_be_bytes(bytes[bytes.len() - 8..].try_into().ok()?))
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn until_nul(field: &[u8]) -> &[u8] {
    field.iter().position(|b| *b == 0).map_or(field, |end| &field[..end])
}

fn trim_nuls(mut data: Vec<u8>) -> Vec<u8> {
    while data.last() == Some(&0) {
        data.pop();
    }
    data
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(archive: &[u8]) -> io::Result<Vec<EntryHeader>> {
        let mut walk = TarWalk::new(archive);
        let mut entries = Vec::new();
        while let Some(entry) = walk.next_entry()? {
            entries.push(entry);
        }
        Ok(entries)
    }

    fn file(path: &str, size: u64) -> EntryHeader {
        EntryHeader { path: path.into(), kind: EntryKind::File, size }
    }

    #[test]
    fn names_of_every_length_and_format_are_read() {
        let long = format!("{}/README.md", "d".repeat(150));
        for new_header in [tar::Header::new_gnu as fn() -> tar::Header, tar::Header::new_ustar] {
            let mut builder = tar::Builder::new(Vec::new());
            for (path, data) in [("short.txt", &b"abc"[..]), (long.as_str(), b"long one")] {
                let mut header = new_header();
                header.set_size(data.len() as u64);
                header.set_mode(0o644);
                builder.append_data(&mut header, path, data).unwrap();
            }
            assert_eq!(
                walk(&builder.into_inner().unwrap()).unwrap(),
                vec![file("short.txt", 3), file(&long, 8)]
            );
        }
    }

    #[test]
    fn pax_paths_and_sizes_apply_to_the_next_entry() {
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_pax_extensions([
                ("path", &b"from/pax.md"[..]),
                ("size", b"5"),
                ("SCHILY.xattr.user.x", b"y"),
            ])
            .unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_size(5);
        header.set_mode(0o644);
        builder.append_data(&mut header, "ignored", &b"hello"[..]).unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_size(2);
        builder.append_data(&mut header, "next", &b"hi"[..]).unwrap();
        let archive = builder.into_inner().unwrap();
        assert_eq!(walk(&archive).unwrap(), vec![file("from/pax.md", 5), file("next", 2)]);
        let mut walk = TarWalk::new(&archive[..]);
        let first = walk.next_entry().unwrap().unwrap();
        assert_eq!(walk.read_data(first.size, 100).unwrap(), b"hello");
    }

    /// A header block claiming an extension of `size` bytes, with no data after it.
    fn extension_header(typeflag: u8, size: u64) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::new(typeflag));
        header.set_size(size);
        header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        header.set_cksum();
        header.as_bytes().to_vec()
    }

    #[test]
    fn huge_extension_headers_are_refused_before_any_is_read() {
        for typeflag in [b'L', b'K', b'x', b'g'] {
            let archive = extension_header(typeflag, 1 << 30);
            let error = walk(&archive).unwrap_err();
            assert!(
                error.to_string().contains("over the 16384-byte limit"),
                "{}: {error}",
                char::from(typeflag)
            );
        }
    }

    #[test]
    fn malformed_archives_are_errors_not_panics() {
        let mut good = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        good.append_data(&mut header, "a", &b"abc"[..]).unwrap();
        let good = good.into_inner().unwrap();
        let mut bad_sum = good.clone();
        bad_sum[0] ^= 1;
        assert!(walk(&bad_sum).is_err(), "checksum");
        assert!(walk(&good[..300]).is_err(), "a cut header");
        assert!(walk(&good[..BLOCK + 1]).is_err(), "cut data");
        let mut orphan = tar::Builder::new(Vec::new());
        orphan.append_pax_extensions([("path", &b"x"[..])]).unwrap();
        assert!(walk(&orphan.into_inner().unwrap()).is_err(), "an extension with nothing after it");
        assert!(Pax::parse(b"99999999999999999999 path=x\n").is_err());
        assert!(Pax::parse(b"5 a=b\n").is_err());
        assert!(Pax::parse(b"12 size=-1\n").is_err());
    }

    #[test]
    fn sizes_in_octal_and_base_256() {
        assert_eq!(parse_size(b"00000000012\0"), Some(10));
        assert_eq!(parse_size(b"           \0"), Some(0));
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[4..].copy_from_slice(&(20u64 << 30).to_be_bytes());
        assert_eq!(parse_size(&big), Some(20 << 30));
        assert_eq!(parse_size(&[0xff; 12]), None);
        assert_eq!(parse_size(b"zz\0\0\0\0\0\0\0\0\0\0"), None);
    }
}
