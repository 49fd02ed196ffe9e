//! Reading an import file: plain, gzip or zstd (told apart by their first
//! bytes, not by the file name, so `-` works for compressed input too), split
//! into lines of bounded size. A line longer than the bound is skipped to its
//! end without being held in memory; a line that is not UTF-8 is reported as
//! such. Neither stops the reading.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

/// Read buffer of the file and of the decompressed stream.
const BUFFER: usize = 256 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Plain,
    Gzip,
    Zstd,
}

impl Compression {
    /// What a stream starting with `head` is.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else if head.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else {
            Compression::Plain
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::Plain => "plain",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// `path` (`-` for standard input), decompressed as its first bytes say.
pub fn open(path: &str) -> io::Result<(Box<dyn BufRead + Send>, Compression)> {
    let raw: Box<dyn Read + Send> = if path == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path)?)
    };
    decompressed(raw)
}

/// `raw`, decompressed as its first bytes say.
pub fn decompressed(mut raw: Box<dyn Read + Send>) -> io::Result<(Box<dyn BufRead + Send>, Compression)> {
    // A pipe may deliver the magic bytes in pieces: read until there are
    // enough to tell, or the stream ends.
    let mut head = Vec::with_capacity(ZSTD_MAGIC.len());
    while head.len() < ZSTD_MAGIC.len() {
        let mut byte = [0u8; 4];
        let want = ZSTD_MAGIC.len() - head.len();
        let n = raw.read(&mut byte[..want])?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&byte[..n]);
    }
    let compression = Compression::detect(&head);
    let whole = BufReader::with_capacity(BUFFER, io::Cursor::new(head).chain(raw));
    let reader: Box<dyn BufRead + Send> = match compression {
        Compression::Plain => Box::new(whole),
        // Multi-member: `cat a.gz b.gz` is a valid gzip stream.
        Compression::Gzip => Box::new(BufReader::with_capacity(
            BUFFER,
            flate2::bufread::MultiGzDecoder::new(whole),
        )),
        Compression::Zstd => Box::new(BufReader::with_capacity(
            BUFFER,
            zstd::stream::read::Decoder::with_buffer(whole)?,
        )),
    };
    Ok((reader, compression))
}

/// One line of input, without its line end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Text(String),
    /// Empty or only whitespace.
    Blank,
    /// Not UTF-8; the offset of the first bad byte.
    NotUtf8 {
        at: usize,
    },
    /// Longer than the bound; its whole length in bytes.
    TooLong {
        bytes: u64,
    },
}

/// Lines of at most `max` bytes from a reader.
pub struct Lines<R> {
    reader: R,
    max: usize,
    number: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    pub fn new(reader: R, max: usize) -> Lines<R> {
        Lines {
            reader,
            max,
            number: 0,
            buf: Vec::new(),
        }
    }

    /// The next line and its number (from 1), or `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line)>> {
        self.buf.clear();
        let mut length: u64 = 0;
        let mut any = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let (chunk, ends) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], true),
                None => (available, false),
            };
            length += chunk.len() as u64;
            // Past the bound, keep counting but stop keeping.
            if length <= self.max as u64 {
                self.buf.extend_from_slice(chunk);
            } else if !self.buf.is_empty() {
                self.buf = Vec::new();
            }
            let used = chunk.len() + usize::from(ends);
            self.reader.consume(used);
            if ends {
                break;
            }
        }
        self.number += 1;
        if length > self.max as u64 {
            return Ok(Some((self.number, Line::TooLong { bytes: length })));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let bytes = std::mem::take(&mut self.buf);
        let line = match String::from_utf8(bytes) {
            Ok(text) if text.trim().is_empty() => Line::Blank,
            Ok(text) => Line::Text(text),
            Err(e) => Line::NotUtf8 {
                at: e.utf8_error().valid_up_to(),
            },
        };
        Ok(Some((self.number, line)))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn all(input: &[u8], max: usize) -> Vec<(u64, Line)> {
        let mut lines = Lines::new(BufReader::with_capacity(7, input), max);
        let mut out = Vec::new();
        while let Some(l) = lines.next_line().unwrap_or_else(|e| panic!("{e}")) {
            out.push(l);
        }
        out
    }

    #[test]
    fn splits_classifies_and_bounds_lines() {
        let input = b"{\"a\":1}\n\n  \r\nabc\xff\ndefghijklmnop\r\nlast";
        let lines = all(input, 10);
        assert_eq!(
            lines,
            vec![
                (1, Line::Text("{\"a\":1}".into())),
                (2, Line::Blank),
                (3, Line::Blank),
                (4, Line::NotUtf8 { at: 3 }),
                (5, Line::TooLong { bytes: 14 }),
                (6, Line::Text("last".into())),
            ]
        );
        assert!(all(b"", 10).is_empty());
        assert_eq!(all(b"x\n", 10), vec![(1, Line::Text("x".into()))]);
    }

    #[test]
    fn a_huge_line_is_not_kept() {
        let mut input = vec![b'x'; 3_000_000];
        input.extend_from_slice(b"\nok\n");
        let mut lines = Lines::new(BufReader::with_capacity(4096, &input[..]), 1000);
        assert_eq!(
            lines.next_line().ok().flatten(),
            Some((1, Line::TooLong { bytes: 3_000_000 }))
        );
        assert!(lines.buf.capacity() <= 1000 + 4096, "{}", lines.buf.capacity());
        assert_eq!(lines.next_line().ok().flatten(), Some((2, Line::Text("ok".into()))));
    }

    fn read_all(data: Vec<u8>) -> (String, Compression) {
        let (mut reader, c) = decompressed(Box::new(io::Cursor::new(data))).unwrap_or_else(|e| panic!("{e}"));
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap_or_else(|e| panic!("{e}"));
        (text, c)
    }

    #[test]
    fn detects_gzip_and_zstd_by_magic() {
        let text = "line one\nline two\n".repeat(1000);
        assert_eq!(read_all(text.clone().into_bytes()), (text.clone(), Compression::Plain));

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let mut two = gz.finish().unwrap_or_else(|e| panic!("{e}"));
        two.extend(two.clone());
        assert_eq!(read_all(two), (text.repeat(2), Compression::Gzip));

        let zst = zstd::encode_all(text.as_bytes(), 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_all(zst), (text.clone(), Compression::Zstd));

        assert_eq!(read_all(b"{".to_vec()), ("{".into(), Compression::Plain));
        assert_eq!(read_all(Vec::new()), (String::new(), Compression::Plain));
    }
}
