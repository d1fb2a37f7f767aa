//! The `aws-chunked` content encoding of S3 uploads: chunks of
//! `hex-size[;chunk-signature=SIG]\r\n data \r\n`, a zero-size final chunk,
//! then optional trailers (`x-amz-checksum-crc32:...`,
//! `x-amz-trailer-signature:...`). Signed chunks chain their signatures from
//! the request's own (the seed); trailing checksums are checked against the
//! decoded payload. [`ChunkedDecoder`] does this incrementally so the edge
//! can stream a body; [`decode_aws_chunked`] is the one-shot form.

use nimbus_core::AwsError;
use sha2::{Digest, Sha256};

use crate::crypto::{ct_eq, sha256_hex, signing_key};
use crate::errors;
use crate::v4::{self, EMPTY_SHA256};
use nimbus_core::checksum::{self, Algorithm, Hasher};

/// What chunk signatures are checked with: the request's signing inputs and its
/// header signature (the seed of the chain).
pub struct ChunkSigning<'a> {
    pub secret_access_key: &'a str,
    pub amz_date: &'a str,
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub seed_signature: &'a str,
}

/// A decoded aws-chunked body: the payload and the trailers (lowercase names, the
/// `x-amz-trailer-signature` left out once verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub payload: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

// Chunk header lines are short (`10000;chunk-signature=` + 64 hex); anything
// much longer is not aws-chunked. Trailers are a few short lines.
const MAX_LINE: usize = 4096;
const MAX_TRAILER_BYTES: usize = 16 * 1024;

struct Signer {
    key: [u8; 32],
    amz_date: String,
    scope: String,
    service: String,
    previous: String,
}

impl Signer {
    fn new(s: &ChunkSigning) -> Self {
        Signer {
            key: signing_key(s.secret_access_key, s.date, s.region, s.service),
            amz_date: s.amz_date.to_string(),
            scope: v4::scope(s.date, s.region, s.service),
            service: s.service.to_string(),
            previous: s.seed_signature.to_string(),
        }
    }

    fn chunk_signature(&self, chunk_sha256_hex: &str) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{chunk_sha256_hex}",
            self.amz_date, self.scope, self.previous
        );
        v4::sign(&self.key, &sts)
    }

    fn trailer_signature(&self, trailers_sha256_hex: &str) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{trailers_sha256_hex}",
            self.amz_date, self.scope, self.previous
        );
        v4::sign(&self.key, &sts)
    }

    /// Checks `provided` against the expected signature and advances the chain.
    fn check(&mut self, expected: &str, provided: &str) -> Result<(), AwsError> {
        if !ct_eq(expected.as_bytes(), provided.as_bytes()) {
            return Err(errors::signature_mismatch(&self.service));
        }
        self.previous = provided.to_string();
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk header line.
    Header,
    /// Passing through chunk data.
    Data { remaining: u64 },
    /// Expecting the CRLF that ends a chunk's data.
    DataEnd,
    /// After the final chunk: collecting trailer lines.
    Trailer,
}

/// Incremental aws-chunked decoder: feed it the body as it arrives with
/// [`push`](Self::push), which appends decoded payload bytes to `out`, then call
/// [`finish`](Self::finish) for the validated trailers.
pub struct ChunkedDecoder {
    state: State,
    line: Vec<u8>,
    signer: Option<Signer>,
    pending_signature: Option<String>,
    chunk_hash: Option<Sha256>,
    checksums: Vec<(Algorithm, Hasher)>,
    // Whether trailing checksums may be computed after the fact from the whole
    // payload (one-shot decoding) instead of on the fly.
    post_hoc: bool,
    trailer: Vec<u8>,
    decoded_len: u64,
}

impl ChunkedDecoder {
    /// `signing`: verify chunk and trailer signatures (for `STREAMING-AWS4-HMAC-SHA256-*`);
    /// `None` for `STREAMING-UNSIGNED-PAYLOAD-TRAILER`, where chunk signatures are absent.
    /// `declared_trailer`: the request's `x-amz-trailer` header; the checksums it names are
    /// computed while streaming and checked at [`finish`](Self::finish).
    pub fn new(
        signing: Option<&ChunkSigning>,
        declared_trailer: Option<&str>,
    ) -> Result<Self, AwsError> {
        let mut checksums = Vec::new();
        for name in declared_trailer
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            if !name.to_ascii_lowercase().starts_with("x-amz-checksum-") {
                continue;
            }
            let alg = Algorithm::from_name(name).ok_or_else(|| {
                AwsError::new(
                    "InvalidRequest",
                    "The value specified in the x-amz-trailer header is not supported",
                )
            })?;
            if !checksums.iter().any(|(a, _)| *a == alg) {
                checksums.push((alg, Hasher::new(alg)));
            }
        }
        Ok(ChunkedDecoder {
            state: State::Header,
            line: Vec::new(),
            signer: signing.map(Signer::new),
            pending_signature: None,
            chunk_hash: None,
            checksums,
            post_hoc: false,
            trailer: Vec::new(),
            decoded_len: 0,
        })
    }

    /// Payload bytes decoded so far (compare with `x-amz-decoded-content-length`).
    pub fn decoded_len(&self) -> u64 {
        self.decoded_len
    }

    /// Decodes `input`, appending payload bytes to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), AwsError> {
        let mut rest = input;
        while !rest.is_empty() {
            match self.state {
                State::Header => match rest.iter().position(|b| *b == b'\n') {
                    Some(pos) => {
                        let (line, tail) = rest.split_at(pos + 1);
                        self.line.extend_from_slice(line);
                        rest = tail;
                        self.check_line_len()?;
                        self.header_line()?;
                    }
                    None => {
                        self.line.extend_from_slice(rest);
                        rest = &[];
                        self.check_line_len()?;
                    }
                },
                State::Data { remaining } => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(rest.len());
                    let (data, tail) = rest.split_at(n);
                    if let Some(h) = self.chunk_hash.as_mut() {
                        h.update(data);
                    }
                    for (_, h) in &mut self.checksums {
                        h.update(data);
                    }
                    out.extend_from_slice(data);
                    self.decoded_len += n as u64;
                    rest = tail;
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        State::DataEnd
                    } else {
                        State::Data { remaining }
                    };
                }
                State::DataEnd => {
                    let (first, tail) = rest.split_at(1);
                    rest = tail;
                    match (self.line.as_slice(), first) {
                        ([], [b'\r']) => self.line.push(b'\r'),
                        ([] | [b'\r'], [b'\n']) => {
                            self.line.clear();
                            self.end_of_chunk()?;
                            self.state = State::Header;
                        }
                        _ => {
                            return Err(errors::incomplete_body(
                                "chunk data is not followed by CRLF",
                            ))
                        }
                    }
                }
                State::Trailer => {
                    if self.trailer.len() + rest.len() > MAX_TRAILER_BYTES {
                        return Err(errors::malformed_trailer());
                    }
                    self.trailer.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
        Ok(())
    }

    fn check_line_len(&self) -> Result<(), AwsError> {
        if self.line.len() > MAX_LINE {
            return Err(errors::incomplete_body("chunk header line too long"));
        }
        Ok(())
    }

    fn header_line(&mut self) -> Result<(), AwsError> {
        let raw = std::mem::take(&mut self.line);
        let text = std::str::from_utf8(&raw)
            .map_err(|_| errors::incomplete_body("chunk header is not text"))?;
        let text = text.trim_end_matches(['\r', '\n']);
        let mut fields = text.split(';');
        let size_text = fields.next().unwrap_or("").trim();
        if size_text.is_empty()
            || size_text.len() > 16
            || !size_text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(errors::incomplete_body("invalid chunk size"));
        }
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|_| errors::incomplete_body("invalid chunk size"))?;
        let signature = fields
            .filter_map(|f| f.trim().split_once('='))
            .find(|(k, _)| k.trim() == "chunk-signature")
            .map(|(_, v)| v.trim().to_string());

        if let Some(signer) = &self.signer {
            let Some(sig) = signature else {
                return Err(errors::signature_mismatch(&signer.service));
            };
            self.pending_signature = Some(sig);
            self.chunk_hash = Some(Sha256::new());
        }
        if size == 0 {
            self.end_of_chunk()?;
            self.state = State::Trailer;
        } else {
            self.state = State::Data { remaining: size };
        }
        Ok(())
    }

    fn end_of_chunk(&mut self) -> Result<(), AwsError> {
        if let (Some(signer), Some(hash)) = (self.signer.as_mut(), self.chunk_hash.take()) {
            let provided = self.pending_signature.take().unwrap_or_default();
            let expected = signer.chunk_signature(&hex::encode(hash.finalize()));
            signer.check(&expected, &provided)?;
        }
        Ok(())
    }

    /// Ends decoding: checks that the final chunk arrived, verifies the trailer
    /// signature (when signing) and the trailing checksums, and returns the trailers.
    pub fn finish(self) -> Result<Vec<(String, String)>, AwsError> {
        self.finish_with(None)
    }

    fn finish_with(mut self, payload: Option<&[u8]>) -> Result<Vec<(String, String)>, AwsError> {
        if self.state != State::Trailer {
            return Err(errors::incomplete_body(
                "the final zero-length chunk is missing",
            ));
        }
        let text = std::str::from_utf8(&self.trailer).map_err(|_| errors::malformed_trailer())?;
        let mut trailers = Vec::new();
        let mut trailer_signature = None;
        // Clients differ on blank lines around the trailers; any blank line is skipped.
        for line in text.split('\n').map(|l| l.trim_end_matches('\r')) {
            if line.trim().is_empty() {
                continue;
            }
            let (name, value) = line.split_once(':').ok_or_else(errors::malformed_trailer)?;
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().to_string();
            if name.is_empty() {
                return Err(errors::malformed_trailer());
            }
            if name == "x-amz-trailer-signature" {
                trailer_signature = Some(value);
            } else {
                trailers.push((name, value));
            }
        }

        if let Some(signer) = self.signer.as_mut() {
            if !trailers.is_empty() || trailer_signature.is_some() {
                let provided = trailer_signature.unwrap_or_default();
                let mut canonical = String::new();
                for (name, value) in &trailers {
                    canonical.push_str(name);
                    canonical.push(':');
                    canonical.push_str(value);
                    canonical.push('\n');
                }
                let expected = signer.trailer_signature(&sha256_hex(canonical.as_bytes()));
                signer.check(&expected, &provided)?;
            }
        }

        let mut computed: Vec<(Algorithm, String)> = self
            .checksums
            .into_iter()
            .map(|(alg, h)| (alg, h.finish_base64()))
            .collect();
        for (name, value) in &trailers {
            if !name.starts_with("x-amz-checksum-") {
                continue;
            }
            let alg = Algorithm::from_name(name).ok_or_else(errors::malformed_trailer)?;
            if !alg.is_well_formed(value) {
                return Err(errors::invalid_checksum_value(name));
            }
            let expected = match computed.iter().find(|(a, _)| *a == alg) {
                Some((_, v)) => v.clone(),
                None => match payload.filter(|_| self.post_hoc) {
                    Some(p) => {
                        let v = checksum::compute(alg, p);
                        computed.push((alg, v.clone()));
                        v
                    }
                    // A checksum the request never announced in x-amz-trailer.
                    None => return Err(errors::malformed_trailer()),
                },
            };
            if expected != *value {
                return Err(errors::bad_digest(alg.label()));
            }
        }
        Ok(trailers)
    }
}

/// Decodes an aws-chunked body (Content-Encoding: aws-chunked; x-amz-decoded-content-length):
/// hex-size;chunk-signature=SIG\r\n data \r\n ..., terminated by a 0-size chunk, optionally followed
/// by trailer lines (x-amz-checksum-crc32:..., x-amz-trailer-signature:...). When `signing` is Some,
/// each chunk signature (and the trailer signature) is verified in sequence starting from the seed
/// signature (the request's header signature); mismatch -> SignatureDoesNotMatch. Also handles the
/// unsigned form (hex-size\r\n data \r\n ... 0\r\n trailers \r\n\r\n). Returns the payload and the
/// trailers (lowercased names). Trailing checksums (crc32, crc32c, crc64nvme, sha1, sha256) are
/// validated against the payload; mismatch -> BadDigest 400 "The CRC32 you specified did not match
/// the calculated checksum." (with the algorithm's name).
///
/// The caller still compares `payload.len()` with `x-amz-decoded-content-length`.
pub fn decode_aws_chunked(
    body: &[u8],
    signing: Option<&ChunkSigning>,
) -> Result<Decoded, AwsError> {
    let mut decoder = ChunkedDecoder::new(signing, None)?;
    decoder.post_hoc = true;
    let mut payload = Vec::with_capacity(body.len());
    decoder.push(body, &mut payload)?;
    let trailers = decoder.finish_with(Some(&payload))?;
    Ok(Decoded { payload, trailers })
}

/// Encodes `payload` as an aws-chunked body in chunks of `chunk_size` bytes (64 KiB when 0),
/// signed when `signing` is Some (its `seed_signature` is the request's signature, sent with
/// `x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`), followed by
/// `trailers` (e.g. `("x-amz-checksum-crc32", compute_checksum("crc32", payload))`) and,
/// when signed, their trailer signature. For nimbus's own clients and tests.
pub fn encode_aws_chunked(
    payload: &[u8],
    chunk_size: usize,
    signing: Option<&ChunkSigning>,
    trailers: &[(String, String)],
) -> Vec<u8> {
    let chunk_size = if chunk_size == 0 {
        64 * 1024
    } else {
        chunk_size
    };
    let mut signer = signing.map(Signer::new);
    let mut out = Vec::with_capacity(payload.len() + 256);
    let mut write_chunk = |data: &[u8], out: &mut Vec<u8>| {
        out.extend_from_slice(format!("{:x}", data.len()).as_bytes());
        if let Some(s) = signer.as_mut() {
            let sig = s.chunk_signature(&sha256_hex(data));
            out.extend_from_slice(format!(";chunk-signature={sig}").as_bytes());
            s.previous = sig;
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(data);
        if !data.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
    };
    for chunk in payload.chunks(chunk_size) {
        write_chunk(chunk, &mut out);
    }
    write_chunk(&[], &mut out);
    let mut canonical = String::new();
    for (name, value) in trailers {
        let name = name.to_ascii_lowercase();
        out.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
        canonical.push_str(&format!("{name}:{value}\n"));
    }
    if let Some(s) = signer.as_ref() {
        if !trailers.is_empty() {
            let sig = s.trailer_signature(&sha256_hex(canonical.as_bytes()));
            out.extend_from_slice(format!("x-amz-trailer-signature:{sig}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}
