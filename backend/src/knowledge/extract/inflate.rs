//! Bounds on how far a PDF's compressed streams expand, checked before `lopdf` inflates them.
//!
//! `lopdf` inflates each stream into memory without a limit: object streams while the file
//! loads, page contents and fonts while `pdf-extract` reads pages. A few kilobytes of Flate or
//! LZW data can expand to gigabytes, so two checks count the output first, in fixed-size
//! buffers:
//! - [`check_raw`] runs before loading. It inflates the bytes after every `stream` keyword of
//!   the file as `lopdf` would (zlib, then raw deflate when zlib yields nothing). That covers
//!   the object streams, which loading unpacks.
//! - [`check_loaded`] runs after loading and decryption, on every stream's filter chain. That
//!   covers encrypted streams (their raw bytes are ciphertext), LZW and chains such as
//!   ASCII85 then Flate.

use std::io::{self, Read, Write};

use flate2::read::{DeflateDecoder, ZlibDecoder};
use pdf_extract::{Document, Object, Stream};

use super::ExtractError;

/// Maximum bytes one stream may expand to, and maximum bytes of all streams together.
#[derive(Debug, Clone, Copy)]
pub(super) struct InflateLimits {
    /// Per stream: bounds the memory `lopdf` allocates for one stream.
    pub stream: u64,
    /// All streams of the file together: bounds the time spent inflating.
    pub total: u64,
}

/// Inflates the data after every `stream` keyword of the raw file, counting the output.
pub(super) fn check_raw(bytes: &[u8], limits: InflateLimits) -> Result<(), ExtractError> {
    let mut total = 0u64;
    for start in stream_data_starts(bytes) {
        let data = &bytes[start..];
        let mut size = count(ZlibDecoder::new(data), limits.stream);
        if size.is_err_and(|written| written == 0) && data.len() > 2 {
            // lopdf's fallback for streams whose zlib header or checksum is wrong.
            size = count(DeflateDecoder::new(&data[2..]), limits.stream);
        }
        let written = size.unwrap_or_else(|written| written);
        total = add_checked(total, written, limits)?;
    }
    Ok(())
}

/// Decodes every stream of a loaded (and decrypted) document through its filter chain,
/// counting the output of the filters that can expand without bound.
pub(super) fn check_loaded(document: &Document, limits: InflateLimits) -> Result<(), ExtractError> {
    let mut total = 0u64;
    for object in document.objects.values() {
        if let Object::Stream(stream) = object {
            total = add_checked(total, decoded_size(stream, limits)?, limits)?;
        }
    }
    Ok(())
}

/// Returns the size of a stream after its filters, decoding stage by stage. A filter that
/// `lopdf` cannot decode ends the chain, because `lopdf` stops there too.
fn decoded_size(stream: &Stream, limits: InflateLimits) -> Result<u64, ExtractError> {
    let Ok(filters) = stream.filters() else {
        return Ok(stream.content.len() as u64);
    };
    let mut data = stream.content.clone();
    for (index, filter) in filters.iter().enumerate() {
        let last = index + 1 == filters.len();
        data = match *filter {
            b"FlateDecode" => {
                let mut output = Vec::new();
                let mut size = decode_capped(ZlibDecoder::new(&data[..]), &mut output, limits);
                if size.is_err_and(|written| written == 0) && data.len() > 2 {
                    output.clear();
                    size = decode_capped(DeflateDecoder::new(&data[2..]), &mut output, limits);
                }
                check_stream(size.unwrap_or_else(|written| written), limits)?;
                output
            }
            b"LZWDecode" => {
                let mut output = CappedWriter::new(limits.stream);
                let mut decoder =
                    weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
                // The writer rejects bytes past the limit, which ends decoding with an error.
                let _ = decoder.into_stream(&mut output).decode_all(&data[..]);
                check_stream(output.written, limits)?;
                output.buffer
            }
            // ASCII85 gives at most 4 bytes per input byte (a `z` stands for four zero bytes),
            // so lopdf may decode it without a cap before the next filter.
            b"ASCII85Decode" if !last => {
                let mut step = Stream::new(stream.dict.clone(), data);
                step.dict
                    .set("Filter", Object::Name(b"ASCII85Decode".to_vec()));
                step.dict.remove(b"DecodeParms");
                match step.decompressed_content() {
                    Ok(decoded) => decoded,
                    Err(_) => return Ok(0),
                }
            }
            _ => return Ok(data.len() as u64),
        };
    }
    Ok(data.len() as u64)
}

fn check_stream(written: u64, limits: InflateLimits) -> Result<(), ExtractError> {
    if written > limits.stream {
        return Err(ExtractError::PdfStreamTooLarge {
            limit: limits.stream,
        });
    }
    Ok(())
}

fn add_checked(total: u64, written: u64, limits: InflateLimits) -> Result<u64, ExtractError> {
    check_stream(written, limits)?;
    let total = total.saturating_add(written);
    if total > limits.total {
        return Err(ExtractError::PdfInflatesTooFar {
            limit: limits.total,
        });
    }
    Ok(total)
}

/// Returns the byte offsets where the data of a `stream` keyword begins (after its end of
/// line). A match inside other data only costs a failed inflate of a few bytes.
fn stream_data_starts(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    const KEYWORD: &[u8] = b"stream";
    bytes
        .windows(KEYWORD.len())
        .enumerate()
        .filter(move |(at, window)| *window == KEYWORD && !bytes[..*at].ends_with(b"end"))
        .filter_map(move |(at, _)| {
            let after = at + KEYWORD.len();
            match bytes.get(after..) {
                Some([b'\r', b'\n', ..]) => Some(after + 2),
                Some([b'\n' | b'\r', ..]) => Some(after + 1),
                _ => None,
            }
        })
}

/// Reads `reader` to its end or to one byte past `cap`, keeping nothing. Returns the bytes
/// read, as `Err` when reading failed part way.
fn count(mut reader: impl Read, cap: u64) -> Result<u64, u64> {
    let mut buffer = [0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return Ok(written),
            Ok(read) => {
                written += read as u64;
                if written > cap {
                    return Ok(written);
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(written),
        }
    }
}

/// Reads like [`count`] but keeps the bytes (at most one past the stream limit) for the next
/// filter.
fn decode_capped(
    reader: impl Read,
    output: &mut Vec<u8>,
    limits: InflateLimits,
) -> Result<u64, u64> {
    let mut limited = reader.take(limits.stream + 1);
    match limited.read_to_end(output) {
        Ok(_) => Ok(output.len() as u64),
        Err(_) => Err(output.len() as u64),
    }
}

/// A writer that keeps bytes up to a cap and rejects the rest.
struct CappedWriter {
    buffer: Vec<u8>,
    written: u64,
    cap: u64,
}

impl CappedWriter {
    fn new(cap: u64) -> Self {
        Self {
            buffer: Vec::new(),
            written: 0,
            cap,
        }
    }
}

impl Write for CappedWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.written += bytes.len() as u64;
        if self.written > self.cap {
            return Err(io::Error::other("over the stream limit"));
        }
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::ZlibEncoder;
    use flate2::Compression;

    const LIMITS: InflateLimits = InflateLimits {
        stream: 1_000_000,
        total: 3_000_000,
    };

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn raw_file(streams: &[Vec<u8>]) -> Vec<u8> {
        let mut file = b"%PDF-1.7\n".to_vec();
        for (index, data) in streams.iter().enumerate() {
            file.extend_from_slice(
                format!(
                    "{} 0 obj\n<< /Length {} /Filter /FlateDecode >>\nstream\r\n",
                    index + 1,
                    data.len()
                )
                .as_bytes(),
            );
            file.extend_from_slice(data);
            file.extend_from_slice(b"\nendstream\nendobj\n");
        }
        file
    }

    #[test]
    fn raw_streams_within_limits_pass() {
        let file = raw_file(&[zlib(&[b'a'; 900_000]), zlib(b"BT (Gate 3) Tj ET")]);
        check_raw(&file, LIMITS).unwrap();
    }

    #[test]
    fn raw_stream_past_limit_is_rejected() {
        // 2 MB of zeros compress to about 2 kB.
        let bomb = zlib(&vec![0u8; 2_000_000]);
        assert!(bomb.len() < 10_000);
        let error = check_raw(&raw_file(&[bomb]), LIMITS).unwrap_err();
        assert!(matches!(
            error,
            ExtractError::PdfStreamTooLarge { limit: 1_000_000 }
        ));
        assert!(error.to_string().contains("1000000 bytes"), "{error}");
    }

    #[test]
    fn raw_streams_past_total_are_rejected() {
        let part = zlib(&vec![0u8; 900_000]);
        let file = raw_file(&[part.clone(), part.clone(), part.clone(), part]);
        let error = check_raw(&file, LIMITS).unwrap_err();
        assert!(matches!(
            error,
            ExtractError::PdfInflatesTooFar { limit: 3_000_000 }
        ));
    }

    #[test]
    fn raw_deflate_after_bad_header_counts() {
        // lopdf retries a stream with a broken zlib header as raw deflate from byte 2.
        let mut bomb = zlib(&vec![0u8; 2_000_000]);
        bomb[0] = 0xff;
        let error = check_raw(&raw_file(&[bomb]), LIMITS).unwrap_err();
        assert!(matches!(error, ExtractError::PdfStreamTooLarge { .. }));
    }

    #[test]
    fn keyword_forms_are_found() {
        let starts: Vec<usize> =
            stream_data_starts(b"stream\r\nA endstream stream\nB streamX").collect();
        assert_eq!(starts, vec![8, 27]);
    }

    fn loaded_stream(filters: &[&str], content: Vec<u8>) -> Stream {
        let mut dict = pdf_extract::Dictionary::new();
        let names: Vec<Object> = filters
            .iter()
            .map(|name| Object::Name(name.as_bytes().to_vec()))
            .collect();
        dict.set("Filter", Object::Array(names));
        Stream::new(dict, content)
    }

    #[test]
    fn loaded_flate_and_lzw_are_bounded() {
        let flate = loaded_stream(&["FlateDecode"], zlib(&vec![0u8; 2_000_000]));
        assert!(matches!(
            decoded_size(&flate, LIMITS),
            Err(ExtractError::PdfStreamTooLarge { .. })
        ));

        let mut encoder = weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
        let lzw = encoder.encode(&vec![0u8; 2_000_000]).unwrap();
        assert!(lzw.len() < 100_000, "{} bytes", lzw.len());
        let stream = loaded_stream(&["LZWDecode"], lzw);
        assert!(matches!(
            decoded_size(&stream, LIMITS),
            Err(ExtractError::PdfStreamTooLarge { .. })
        ));

        let small = loaded_stream(&["FlateDecode"], zlib(b"BT (Gate 3) Tj ET"));
        assert_eq!(decoded_size(&small, LIMITS).unwrap(), 17);
    }

    #[test]
    fn loaded_ascii85_then_flate_is_bounded() {
        let bomb = zlib(&vec![0u8; 2_000_000]);
        let mut ascii85 = Vec::new();
        for group in bomb.chunks(4) {
            let mut word = [0u8; 4];
            word[..group.len()].copy_from_slice(group);
            let mut value = u32::from_be_bytes(word);
            let mut digits = [0u8; 5];
            for digit in digits.iter_mut().rev() {
                *digit = b'!' + (value % 85) as u8;
                value /= 85;
            }
            ascii85.extend_from_slice(&digits[..group.len() + 1]);
        }
        ascii85.extend_from_slice(b"~>");
        let stream = loaded_stream(&["ASCII85Decode", "FlateDecode"], ascii85);
        assert!(matches!(
            decoded_size(&stream, LIMITS),
            Err(ExtractError::PdfStreamTooLarge { .. })
        ));
    }
}
