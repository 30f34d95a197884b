//! Reading a Debian binary package (`.deb`) as the gateway checks an
//! upload: an `ar` archive whose members are `debian-binary` (`2.x`), then
//! `control.tar[.gz|.xz|.zst]`, then `data.tar[.gz|.xz|.zst|.bz2]`
//! (members named `_…` may be added anywhere after `debian-binary`, as
//! dpkg allows). The control archive is unpacked (bounded) to read the
//! `control` file's `Package`, `Version` and `Architecture`; the data
//! archive is only checked to be there whole (it is the installer's job
//! on the endpoint, after the signed manifest and hash are checked).
//!
//! Reads from any [`Read`] in one pass, so a large upload is parsed while
//! it is read from disk, never held in memory.

use std::io::{self, Read};

use super::version::{DebVersion, VersionError};

/// Largest control archive read (compressed); real ones are kilobytes.
pub const MAX_CONTROL_MEMBER: u64 = 4 * 1024 * 1024;
/// Largest unpacked control archive (a decompression bomb stops here).
pub const MAX_CONTROL_UNPACKED: u64 = 16 * 1024 * 1024;
/// Largest `control` file.
const MAX_CONTROL_FILE: u64 = 1024 * 1024;

/// What a package says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebInfo {
    pub package: String,
    pub version: String,
    pub architecture: String,
    /// The description's first line (its synopsis); empty when absent.
    pub description: String,
    /// `Depends`, as written; empty when absent.
    pub depends: String,
    /// The control archive's compression (`none`, `gz`, `xz`, `zst`).
    pub control_compression: &'static str,
}

/// Why a file is not an acceptable `.deb`.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("not a Debian package: it does not start with the ar archive signature `!<arch>`")]
    NotAnArchive,
    #[error("the package is cut short inside {0}")]
    Truncated(String),
    #[error("the ar member header at byte {offset} is malformed: {why}")]
    BadMemberHeader { offset: u64, why: String },
    #[error("the first member must be `debian-binary`, not `{0}`")]
    DebianBinaryNotFirst(String),
    #[error("`debian-binary` says `{0}`; only format 2.x packages are supported")]
    UnsupportedFormat(String),
    #[error("expected `control.tar…` after `debian-binary`, found `{0}`")]
    ControlNotSecond(String),
    #[error("expected `data.tar…` after the control archive, found `{0}`")]
    DataNotThird(String),
    #[error("the package has no `{0}` member")]
    Missing(&'static str),
    #[error("`{0}`: unsupported compression (control.tar may be plain, .gz, .xz or .zst)")]
    UnsupportedCompression(String),
    #[error("the control archive is larger than {0} bytes")]
    ControlTooLarge(u64),
    #[error("the control archive cannot be unpacked: {0}")]
    ControlArchive(String),
    #[error("the control archive has no `control` file")]
    NoControlFile,
    #[error("the control file has no `{0}` field")]
    MissingField(&'static str),
    #[error("the control file's `{field}` is not valid: {why}")]
    BadField { field: &'static str, why: String },
    #[error("the control file's `Version`: {0}")]
    BadVersion(#[from] VersionError),
    #[error("reading the package failed: {0}")]
    Io(io::Error),
}

/// One `ar` member's header.
struct Member {
    name: String,
    size: u64,
}

/// Reads the next member header, `None` at a clean end.
fn next_member<R: Read>(r: &mut R, offset: &mut u64) -> Result<Option<Member>, DebError> {
    // Members start at even offsets: a padding `\n` may come first.
    let mut head = [0u8; 60];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DebError::Io(e)),
        }
    }
    if got == 0 {
        return Ok(None);
    }
    if got < head.len() {
        return Err(DebError::Truncated("an ar member header".into()));
    }
    let bad = |why: &str| DebError::BadMemberHeader {
        offset: *offset,
        why: why.to_owned(),
    };
    if &head[58..60] != b"`\n" {
        return Err(bad("no header terminator"));
    }
    let name = std::str::from_utf8(&head[..16])
        .map_err(|_| bad("the name is not text"))?
        .trim_end_matches(' ')
        .trim_end_matches('/')
        .to_owned();
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    let size = std::str::from_utf8(&head[48..58])
        .ok()
        .map(str::trim)
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| bad("the size is not a number"))?;
    *offset += 60;
    Ok(Some(Member { name, size }))
}

/// Reads a member's bytes (at most `limit`; more is an error).
fn read_member<R: Read>(
    r: &mut R,
    m: &Member,
    limit: u64,
    offset: &mut u64,
) -> Result<Vec<u8>, DebError> {
    if m.size > limit {
        return Err(DebError::ControlTooLarge(limit));
    }
    let mut buf = Vec::with_capacity(usize::try_from(m.size).unwrap_or(0));
    let n = Read::take(&mut *r, m.size)
        .read_to_end(&mut buf)
        .map_err(DebError::Io)?;
    if n as u64 != m.size {
        return Err(DebError::Truncated(format!("`{}`", m.name)));
    }
    *offset += m.size;
    skip_padding(r, m, offset)?;
    Ok(buf)
}

/// Skips a member's bytes, checking they are all there.
fn skip_member<R: Read>(r: &mut R, m: &Member, offset: &mut u64) -> Result<(), DebError> {
    let n = io::copy(&mut Read::take(&mut *r, m.size), &mut io::sink()).map_err(DebError::Io)?;
    if n != m.size {
        return Err(DebError::Truncated(format!("`{}`", m.name)));
    }
    *offset += m.size;
    skip_padding(r, m, offset)
}

fn skip_padding<R: Read>(r: &mut R, m: &Member, offset: &mut u64) -> Result<(), DebError> {
    if m.size % 2 == 1 {
        let mut pad = [0u8; 1];
        // A missing final pad byte at the very end is tolerated (as ar does).
        if r.read(&mut pad).map_err(DebError::Io)? == 1 {
            *offset += 1;
        }
    }
    Ok(())
}

/// The compression named by a member's extension.
fn compression(name: &str, base: &str) -> Option<&'static str> {
    match name.strip_prefix(base)? {
        "" => Some("none"),
        ".gz" => Some("gz"),
        ".xz" => Some("xz"),
        ".zst" => Some("zst"),
        ".bz2" if base == "data.tar" => Some("bz2"),
        ".lzma" if base == "data.tar" => Some("lzma"),
        _ => None,
    }
}

/// Unpacks the control archive and answers the `control` file.
fn control_file(bytes: &[u8], comp: &str) -> Result<Vec<u8>, DebError> {
    let err = |e: String| DebError::ControlArchive(e);
    let unpacked: Box<dyn Read + '_> = match comp {
        "none" => Box::new(bytes),
        "gz" => Box::new(flate2::read::GzDecoder::new(bytes)),
        "xz" => {
            // lzma-rs decodes whole streams; bounded by the output limit.
            let mut out = Vec::new();
            let mut input = io::BufReader::new(bytes);
            let mut limited = LimitedWriter {
                inner: &mut out,
                left: MAX_CONTROL_UNPACKED,
            };
            lzma_rs::xz_decompress(&mut input, &mut limited).map_err(|e| err(e.to_string()))?;
            return find_control(&out[..]);
        }
        "zst" => Box::new(
            ruzstd::decoding::StreamingDecoder::new(bytes).map_err(|e| err(e.to_string()))?,
        ),
        other => return Err(DebError::UnsupportedCompression(other.to_owned())),
    };
    find_control(unpacked.take(MAX_CONTROL_UNPACKED))
}

/// A writer that fails past a limit (decompression bombs).
struct LimitedWriter<'a> {
    inner: &'a mut Vec<u8>,
    left: u64,
}

impl io::Write for LimitedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::other(format!(
                "unpacks to more than {MAX_CONTROL_UNPACKED} bytes"
            )));
        }
        self.left -= buf.len() as u64;
        self.inner.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn find_control<R: Read>(r: R) -> Result<Vec<u8>, DebError> {
    let mut archive = tar::Archive::new(r);
    let entries = archive
        .entries()
        .map_err(|e| DebError::ControlArchive(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| DebError::ControlArchive(e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| DebError::ControlArchive(e.to_string()))?
            .into_owned();
        let name = path.to_string_lossy();
        if name == "./control" || name == "control" {
            if entry.size() > MAX_CONTROL_FILE {
                return Err(DebError::BadField {
                    field: "control",
                    why: format!("larger than {MAX_CONTROL_FILE} bytes"),
                });
            }
            let mut out = Vec::new();
            entry
                .read_to_end(&mut out)
                .map_err(|e| DebError::ControlArchive(e.to_string()))?;
            return Ok(out);
        }
    }
    Err(DebError::NoControlFile)
}

/// The fields of a control file (deb822: `Name: value`, continuation lines
/// start with a blank). Names are matched case-insensitively.
pub fn control_fields(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push('\n');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if line.trim().is_empty() {
            // One paragraph only in a control file.
            if !out.is_empty() {
                break;
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether `name` is a valid package name (Debian policy §5.6.1: lowercase
/// letters, digits, `+`, `-`, `.`; at least two characters, starting with
/// a letter or digit).
pub fn valid_package_name(name: &str) -> bool {
    name.len() >= 2
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.'))
}

/// Whether `arch` is a valid architecture name (`amd64`, `all`, `arm64`…).
pub fn valid_architecture(arch: &str) -> bool {
    !arch.is_empty()
        && arch.len() <= 32
        && arch
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn info_from_control(control: &[u8], comp: &'static str) -> Result<DebInfo, DebError> {
    let text = std::str::from_utf8(control).map_err(|_| DebError::BadField {
        field: "control",
        why: "not UTF-8".into(),
    })?;
    let fields = control_fields(text);
    let package = field(&fields, "Package").ok_or(DebError::MissingField("Package"))?;
    if !valid_package_name(package) {
        return Err(DebError::BadField {
            field: "Package",
            why: format!(
                "`{}`: lowercase letters, digits, +, - and . only, at least two characters",
                package.chars().take(64).collect::<String>()
            ),
        });
    }
    let version = field(&fields, "Version").ok_or(DebError::MissingField("Version"))?;
    DebVersion::parse(version)?;
    let architecture =
        field(&fields, "Architecture").ok_or(DebError::MissingField("Architecture"))?;
    if !valid_architecture(architecture) {
        return Err(DebError::BadField {
            field: "Architecture",
            why: format!(
                "`{}`: lowercase letters, digits and - only",
                architecture.chars().take(64).collect::<String>()
            ),
        });
    }
    Ok(DebInfo {
        package: package.to_owned(),
        version: version.trim().to_owned(),
        architecture: architecture.to_owned(),
        description: field(&fields, "Description")
            .and_then(|d| d.lines().next())
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect(),
        depends: field(&fields, "Depends")
            .unwrap_or_default()
            .chars()
            .take(2000)
            .collect(),
        control_compression: comp,
    })
}

/// Reads and checks a whole `.deb` from `r`.
///
/// # Errors
/// What is wrong with it, naming the member or field.
pub fn parse<R: Read>(mut r: R) -> Result<DebInfo, DebError> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => DebError::NotAnArchive,
        _ => DebError::Io(e),
    })?;
    if &magic != b"!<arch>\n" {
        return Err(DebError::NotAnArchive);
    }
    let mut offset = 8u64;
    // 1. debian-binary.
    let m = next_member(&mut r, &mut offset)?.ok_or(DebError::Missing("debian-binary"))?;
    if m.name != "debian-binary" {
        return Err(DebError::DebianBinaryNotFirst(m.name));
    }
    let v = read_member(&mut r, &m, 64, &mut offset).map_err(|e| match e {
        DebError::ControlTooLarge(_) => DebError::UnsupportedFormat("(too long)".into()),
        e => e,
    })?;
    let v = String::from_utf8_lossy(&v).trim().to_owned();
    if !(v.starts_with("2.") && v[2..].bytes().all(|b| b.is_ascii_digit())) {
        return Err(DebError::UnsupportedFormat(v.chars().take(32).collect()));
    }
    // 2. control.tar…, skipping `_…` members.
    let (control, comp) = loop {
        let m = next_member(&mut r, &mut offset)?.ok_or(DebError::Missing("control.tar"))?;
        if m.name.starts_with('_') {
            skip_member(&mut r, &m, &mut offset)?;
            continue;
        }
        if !m.name.starts_with("control.tar") {
            return Err(DebError::ControlNotSecond(m.name));
        }
        let comp = compression(&m.name, "control.tar")
            .ok_or_else(|| DebError::UnsupportedCompression(m.name.clone()))?;
        let bytes = read_member(&mut r, &m, MAX_CONTROL_MEMBER, &mut offset)?;
        break (bytes, comp);
    };
    // 3. data.tar…, checked to be whole.
    loop {
        let m = next_member(&mut r, &mut offset)?.ok_or(DebError::Missing("data.tar"))?;
        if m.name.starts_with('_') {
            skip_member(&mut r, &m, &mut offset)?;
            continue;
        }
        if !m.name.starts_with("data.tar") {
            return Err(DebError::DataNotThird(m.name));
        }
        if compression(&m.name, "data.tar").is_none() {
            return Err(DebError::UnsupportedCompression(m.name));
        }
        skip_member(&mut r, &m, &mut offset)?;
        break;
    }
    let control = control_file(&control, comp)?;
    info_from_control(&control, comp)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ar archive of `members`.
    pub(crate) fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = b"!<arch>\n".to_vec();
        for (name, data) in members {
            out.extend_from_slice(
                format!(
                    "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                    name,
                    0,
                    0,
                    0,
                    100_644,
                    data.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(data);
            if data.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }

    /// A tar archive holding `./control` = `control`.
    fn control_tar(control: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(control.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "./control", control.as_bytes())
            .unwrap();
        b.into_inner().unwrap()
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    const CONTROL: &str = "Package: jg-hello\nVersion: 1:2.0-3\nArchitecture: all\nMaintainer: T <t@example.com>\nDepends: libc6 (>= 2.36)\nDescription: says hello\n a longer text\n";

    fn deb(control: &str) -> Vec<u8> {
        ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", &gz(&control_tar(control))),
            ("data.tar.gz", &gz(&control_tar("data"))),
        ])
    }

    #[test]
    fn a_wellformed_package_is_read() {
        let info = parse(&deb(CONTROL)[..]).unwrap();
        assert_eq!(
            info,
            DebInfo {
                package: "jg-hello".into(),
                version: "1:2.0-3".into(),
                architecture: "all".into(),
                description: "says hello".into(),
                depends: "libc6 (>= 2.36)".into(),
                control_compression: "gz",
            }
        );
        // Uncompressed control, an extra `_` member.
        let plain = ar(&[
            ("debian-binary", b"2.0\n"),
            ("_gpgorigin", b"sig"),
            ("control.tar", &control_tar(CONTROL)),
            ("data.tar.xz", b"not checked"),
        ]);
        assert_eq!(parse(&plain[..]).unwrap().control_compression, "none");
    }

    /// Packages built by the real `dpkg-deb` (xz, gzip, zstd, none).
    #[test]
    fn packages_built_by_dpkg_deb_are_read() {
        let Ok(probe) = std::process::Command::new("dpkg-deb")
            .arg("--version")
            .output()
        else {
            crate::package::skip("dpkg-deb is not installed");
            return;
        };
        assert!(probe.status.success());
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(src.join("usr/share/jg")).unwrap();
        std::fs::write(src.join("DEBIAN/control"), CONTROL).unwrap();
        std::fs::write(src.join("usr/share/jg/f"), "x".repeat(5000)).unwrap();
        for (z, want) in [
            ("xz", "xz"),
            ("gzip", "gz"),
            ("zstd", "zst"),
            ("none", "none"),
        ] {
            let out = dir.path().join(format!("p-{z}.deb"));
            let built = std::process::Command::new("dpkg-deb")
                .args(["--root-owner-group", "-Z", z, "--build"])
                .arg(&src)
                .arg(&out)
                .output()
                .unwrap();
            assert!(built.status.success(), "{built:?}");
            let info = parse(std::fs::File::open(&out).unwrap()).unwrap();
            assert_eq!(
                (
                    info.package.as_str(),
                    info.version.as_str(),
                    info.control_compression
                ),
                ("jg-hello", "1:2.0-3", want),
                "-Z {z}"
            );
        }
    }

    #[test]
    fn malformed_packages_are_named() {
        let e = |bytes: &[u8]| parse(bytes).unwrap_err().to_string();
        assert!(e(b"").contains("ar archive"));
        assert!(e(b"PK\x03\x04 zip file").contains("ar archive"));
        let good = deb(CONTROL);
        // Cut anywhere inside: truncated, never a panic or a success.
        for cut in [9, 70, 130, good.len() - 10] {
            let got = parse(&good[..cut]);
            assert!(got.is_err(), "cut at {cut}");
        }
        assert!(e(&good[..good.len() - 10]).contains("cut short inside `data.tar.gz`"));
        assert!(
            e(&ar(&[("control.tar.gz", b"x")])).contains("first member must be `debian-binary`")
        );
        assert!(e(&ar(&[("debian-binary", b"3.0\n")])).contains("format 2.x"));
        assert!(e(&ar(&[("debian-binary", b"2.0\n")])).contains("no `control.tar` member"));
        assert!(
            e(&ar(&[("debian-binary", b"2.0\n"), ("data.tar.gz", b"x")]))
                .contains("expected `control.tar")
        );
        assert!(
            e(&ar(&[
                ("debian-binary", b"2.0\n"),
                ("control.tar.gz", &gz(&control_tar(CONTROL)))
            ]))
            .contains("no `data.tar` member")
        );
        assert!(
            e(&ar(&[
                ("debian-binary", b"2.0\n"),
                ("control.tar.rar", b"x"),
                ("data.tar", b"x")
            ]))
            .contains("unsupported compression")
        );
        assert!(
            e(&ar(&[
                ("debian-binary", b"2.0\n"),
                ("control.tar.gz", b"not gzip at all"),
                ("data.tar", b"x")
            ]))
            .contains("cannot be unpacked")
        );
        assert!(e(&deb("Version: 1.0\nArchitecture: all\n")).contains("no `Package` field"));
        assert!(e(&deb("Package: x-y\nArchitecture: all\n")).contains("no `Version` field"));
        assert!(e(&deb("Package: x-y\nVersion: 1\n")).contains("no `Architecture` field"));
        assert!(
            e(&deb("Package: Bad_Name\nVersion: 1\nArchitecture: all\n"))
                .contains("`Package` is not valid")
        );
        assert!(e(&deb("Package: ok\nVersion: v1\nArchitecture: all\n")).contains("Version"));
        // A header whose size is not a number.
        let mut broken = good;
        broken[8 + 48] = b'x';
        assert!(e(&broken).contains("malformed"));
        // No control file inside the control archive.
        let nocontrol = ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar", &{
                let mut b = tar::Builder::new(Vec::new());
                let mut h = tar::Header::new_gnu();
                h.set_size(1);
                h.set_cksum();
                b.append_data(&mut h, "./md5sums", &b"x"[..]).unwrap();
                b.into_inner().unwrap()
            }),
            ("data.tar", b"x"),
        ]);
        assert!(e(&nocontrol).contains("no `control` file"));
    }
}
