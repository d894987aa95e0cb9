//! The resumable checkpoint: everything the next training step depends on, so that a run killed at
//! any moment and resumed (`voltarena train --resume RUN_DIR`) gives the uninterrupted run's numbers
//! bit for bit.
//!
//! A checkpoint folder holds the networks (`*.ot`, libtorch's format), `progress.json`,
//! `normalizer.json` (read by evaluation), `resume.bin` (this module's binary format: optimiser
//! moments, random streams, normaliser, the environment's position in its episode, the safety
//! layer's warm start, the replay-buffer segments it needs, the logger's own state) and last
//! `manifest.json`: the format version and the size and SHA-256 of every other file. A folder whose
//! manifest does not match its files (truncated, corrupted, half written) is refused with an error
//! that names the file.
//!
//! The replay buffer is written in immutable segments beside the checkpoint (`RUN_DIR/replay/`):
//! each checkpoint adds the transitions since the previous one, and `resume.bin` lists the segments
//! (and their SHA-256) that still hold transitions the buffer keeps. A transition's next
//! observation and state are not stored when they equal the following transition's observation and
//! state (every step but an episode's last), which halves the size.
//!
//! All numbers are little-endian; floats are stored as their IEEE-754 bits (exact).

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `resume.bin` starts with these 8 bytes, then the format version (u32).
pub const MAGIC: &[u8; 8] = b"VARESUME";
/// Replay segments start with these 8 bytes, then the format version (u32).
pub const SEGMENT_MAGIC: &[u8; 8] = b"VAREPLAY";
/// Version of `resume.bin`, of the replay segments and of `manifest.json`.
pub const FORMAT_VERSION: u32 = 2;
/// `manifest.json`'s `format` field.
pub const MANIFEST_FORMAT: &str = "voltarena-checkpoint/1";

/// Why a checkpoint cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
}

impl CheckpointError {
    pub fn format(path: &Path, message: impl Into<String>) -> CheckpointError {
        CheckpointError::Format { path: path.to_path_buf(), message: message.into() }
    }
}

/// Writes `bytes` to `path` atomically: a sibling temporary file, flushed to disk, renamed over the
/// target. A reader (or a crash) sees either the old file or the complete new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// SHA-256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends little-endian values to a byte vector.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn bool(&mut self, v: bool) {
        self.buf.push(v as u8);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn usize(&mut self, v: usize) {
        self.u64(v as u64);
    }
    pub fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
    }
    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    /// A length-prefixed f32 slice.
    pub fn f32s(&mut self, v: &[f32]) {
        self.u64(v.len() as u64);
        self.f32s_raw(v);
    }
    /// f32 values without a length (the reader knows it).
    pub fn f32s_raw(&mut self, v: &[f32]) {
        self.buf.reserve(4 * v.len());
        for x in v {
            self.buf.extend_from_slice(&x.to_bits().to_le_bytes());
        }
    }
    pub fn f64s(&mut self, v: &[f64]) {
        self.u64(v.len() as u64);
        for &x in v {
            self.f64(x);
        }
    }
    /// A ChaCha random stream: seed, stream and position (restored exactly by [`Reader::chacha`]).
    pub fn chacha(&mut self, r: &rand_chacha::ChaCha8Rng) {
        self.buf.extend_from_slice(&r.get_seed());
        self.u64(r.get_stream());
        self.u128(r.get_word_pos());
    }
    /// Appends the SHA-256 of everything written so far (the reader checks it first).
    pub fn finish(mut self) -> Vec<u8> {
        let d = Sha256::digest(&self.buf);
        self.buf.extend_from_slice(&d);
        self.buf
    }
}

/// Reads what a [`Writer`] wrote; every read is bounds-checked and names what it expected.
pub struct Reader<'a> {
    path: &'a Path,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Checks the trailing SHA-256, the magic and the version; the reader then starts after them.
    pub fn open(path: &'a Path, bytes: &'a [u8], magic: &[u8; 8]) -> Result<Reader<'a>, CheckpointError> {
        if bytes.len() < 12 + 32 {
            return Err(CheckpointError::format(path, format!("truncated: {} bytes", bytes.len())));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if &body[..8] != magic {
            return Err(CheckpointError::format(path, format!("not a VoltArena {} file (magic {:?})", String::from_utf8_lossy(magic), String::from_utf8_lossy(&body[..8]))));
        }
        if Sha256::digest(body).as_slice() != sum {
            return Err(CheckpointError::format(path, "checksum mismatch: the file is truncated or corrupted"));
        }
        let mut r = Reader { path, buf: body, pos: 8 };
        let v = r.u32("format version")?;
        if v != FORMAT_VERSION {
            return Err(CheckpointError::format(path, format!("format version {v}, this build reads version {FORMAT_VERSION}")));
        }
        Ok(r)
    }

    /// A reader over bytes nested inside a checked file (no header or checksum of their own).
    pub fn nested(path: &'a Path, bytes: &'a [u8]) -> Reader<'a> {
        Reader { path, buf: bytes, pos: 0 }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CheckpointError> {
        if self.buf.len() - self.pos < n {
            return Err(CheckpointError::format(self.path, format!("ends at byte {} while reading {what} ({n} bytes expected)", self.buf.len())));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self, what: &str) -> Result<u8, CheckpointError> {
        Ok(self.take(1, what)?[0])
    }
    pub fn bool(&mut self, what: &str) -> Result<bool, CheckpointError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(CheckpointError::format(self.path, format!("{what}: {b} is not a boolean"))),
        }
    }
    pub fn u32(&mut self, what: &str) -> Result<u32, CheckpointError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
    pub fn u64(&mut self, what: &str) -> Result<u64, CheckpointError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }
    pub fn u128(&mut self, what: &str) -> Result<u128, CheckpointError> {
        Ok(u128::from_le_bytes(self.take(16, what)?.try_into().expect("16 bytes")))
    }
    pub fn usize(&mut self, what: &str) -> Result<usize, CheckpointError> {
        let v = self.u64(what)?;
        usize::try_from(v).map_err(|_| CheckpointError::format(self.path, format!("{what}: {v} is too large")))
    }
    pub fn f64(&mut self, what: &str) -> Result<f64, CheckpointError> {
        Ok(f64::from_bits(self.u64(what)?))
    }
    /// A length prefix for `elem`-byte items: checked against what is left, so a corrupted length
    /// cannot make the reader allocate without bound.
    fn len(&mut self, elem: usize, what: &str) -> Result<usize, CheckpointError> {
        let n = self.usize(what)?;
        if n.saturating_mul(elem) > self.buf.len() - self.pos {
            return Err(CheckpointError::format(self.path, format!("{what}: length {n} runs past the end of the file")));
        }
        Ok(n)
    }
    pub fn bytes(&mut self, what: &str) -> Result<&'a [u8], CheckpointError> {
        let n = self.len(1, what)?;
        self.take(n, what)
    }
    pub fn str(&mut self, what: &str) -> Result<String, CheckpointError> {
        let b = self.bytes(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| CheckpointError::format(self.path, format!("{what}: not UTF-8")))
    }
    pub fn f32s(&mut self, what: &str) -> Result<Vec<f32>, CheckpointError> {
        let n = self.len(4, what)?;
        let mut v = Vec::with_capacity(n);
        self.f32s_into(n, &mut v, what)?;
        Ok(v)
    }
    /// Appends `n` f32 values (written by [`Writer::f32s_raw`]) to `out`.
    pub fn f32s_into(&mut self, n: usize, out: &mut Vec<f32>, what: &str) -> Result<(), CheckpointError> {
        let b = self.take(n.checked_mul(4).ok_or_else(|| CheckpointError::format(self.path, format!("{what}: length overflow")))?, what)?;
        out.extend(b.chunks_exact(4).map(|c| f32::from_bits(u32::from_le_bytes(c.try_into().expect("4 bytes")))));
        Ok(())
    }
    /// `n` f32 values into the slice `out` (its length).
    pub fn f32s_to(&mut self, out: &mut [f32], what: &str) -> Result<(), CheckpointError> {
        let b = self.take(out.len() * 4, what)?;
        for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
            *o = f32::from_bits(u32::from_le_bytes(c.try_into().expect("4 bytes")));
        }
        Ok(())
    }
    pub fn f64s(&mut self, what: &str) -> Result<Vec<f64>, CheckpointError> {
        let n = self.len(8, what)?;
        (0..n).map(|_| self.f64(what)).collect()
    }
    pub fn chacha(&mut self, what: &str) -> Result<rand_chacha::ChaCha8Rng, CheckpointError> {
        let seed: [u8; 32] = self.take(32, what)?.try_into().expect("32 bytes");
        let mut r = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::from_seed(seed);
        r.set_stream(self.u64(what)?);
        r.set_word_pos(self.u128(what)?);
        Ok(r)
    }
    /// Fails unless everything was read (a longer file is not this format).
    pub fn end(&self) -> Result<(), CheckpointError> {
        if self.pos != self.buf.len() {
            return Err(CheckpointError::format(self.path, format!("{} unexpected bytes after the last field", self.buf.len() - self.pos)));
        }
        Ok(())
    }
    pub fn path(&self) -> &Path {
        self.path
    }
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// File name → (size in bytes, SHA-256 hex).
    pub files: std::collections::BTreeMap<String, FileEntry>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub bytes: u64,
    pub sha256: String,
}

/// Writes `dir/manifest.json` over every other file of `dir` (call it last).
pub fn write_manifest(dir: &Path) -> Result<(), CheckpointError> {
    let io = |path: &Path, source| CheckpointError::Io { path: path.to_path_buf(), source };
    let mut files = std::collections::BTreeMap::new();
    let mut names: Vec<String> = std::fs::read_dir(dir).map_err(|e| io(dir, e))?.filter_map(|e| e.ok()).filter(|e| e.path().is_file()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n != "manifest.json").collect();
    names.sort();
    for n in names {
        let p = dir.join(&n);
        let b = std::fs::read(&p).map_err(|e| io(&p, e))?;
        files.insert(n, FileEntry { bytes: b.len() as u64, sha256: sha256_hex(&b) });
    }
    let m = Manifest { format: MANIFEST_FORMAT.into(), files };
    let p = dir.join("manifest.json");
    std::fs::write(&p, serde_json::to_string_pretty(&m).expect("manifest serialises")).map_err(|e| io(&p, e))
}

/// Checks `dir/manifest.json` against the files. `Ok(false)`: the folder has no manifest (written
/// before checkpoints had one; nothing to check). A manifest that does not match is an error naming
/// the file.
pub fn verify_manifest(dir: &Path) -> Result<bool, CheckpointError> {
    let p = dir.join("manifest.json");
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(CheckpointError::Io { path: p, source: e }),
    };
    let m: Manifest = serde_json::from_str(&text).map_err(|e| CheckpointError::format(&p, e.to_string()))?;
    if m.format != MANIFEST_FORMAT {
        return Err(CheckpointError::format(&p, format!("format '{}', this build reads '{MANIFEST_FORMAT}'", m.format)));
    }
    for (name, want) in &m.files {
        if name.contains('/') || name.contains('\\') || name == ".." {
            return Err(CheckpointError::format(&p, format!("file name '{name}' is not a plain name")));
        }
        let f = dir.join(name);
        let b = std::fs::read(&f).map_err(|e| CheckpointError::Io { path: f.clone(), source: e })?;
        if b.len() as u64 != want.bytes {
            return Err(CheckpointError::format(&f, format!("{} bytes, the manifest says {} (truncated or replaced)", b.len(), want.bytes)));
        }
        if sha256_hex(&b) != want.sha256 {
            return Err(CheckpointError::format(&f, "SHA-256 differs from the manifest (corrupted)"));
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_damage_is_named() {
        let mut w = Writer::default();
        w.buf.extend_from_slice(MAGIC);
        w.u32(FORMAT_VERSION);
        w.f64(-0.1);
        w.f32s(&[1.5, f32::MIN_POSITIVE, -0.0]);
        w.str("ok");
        let mut rng: rand_chacha::ChaCha8Rng = rand::SeedableRng::seed_from_u64(9);
        let _ = rand::RngExt::random_range(&mut rng, 0..1000u32);
        w.chacha(&rng);
        let bytes = w.finish();
        let p = Path::new("x/resume.bin");
        let mut r = Reader::open(p, &bytes, MAGIC).unwrap();
        assert_eq!(r.f64("a").unwrap().to_bits(), (-0.1f64).to_bits());
        assert_eq!(r.f32s("b").unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>(), [1.5f32, f32::MIN_POSITIVE, -0.0].iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        assert_eq!(r.str("c").unwrap(), "ok");
        let mut back = r.chacha("d").unwrap();
        assert_eq!(rand::RngExt::random_range(&mut back, 0..u64::MAX), rand::RngExt::random_range(&mut rng, 0..u64::MAX));
        r.end().unwrap();
        // Truncated, flipped and foreign bytes are refused, naming the file.
        for bad in [bytes[..bytes.len() - 1].to_vec(), { let mut b = bytes.clone(); b[20] ^= 1; b }, b"VAREPLAY\x01\x00\x00\x00".repeat(8)] {
            let e = Reader::open(p, &bad, MAGIC).err().expect("refused").to_string();
            assert!(e.starts_with("x/resume.bin: "), "{e}");
        }
    }
}
