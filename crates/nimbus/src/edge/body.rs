//! Bodies that do not fit in memory, between hyper and the services: the
//! request side adapts an incoming HTTP body to a [`BodySource`] (unwrapping
//! aws-chunked framing incrementally and checking the signed payload hash at
//! the end), the response side streams [`ResponseBody`] file ranges in
//! bounded reads.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use nimbus_auth::ChunkedDecoder;
use nimbus_core::{AwsError, BodySource, BoxFuture, FileSlice, ResponseBody};
use sha2::{Digest, Sha256};

/// What the response body is made of; `http_body_util`'s boxing keeps one type for all answers.
pub type HttpBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// Reads from files in pieces of this size.
const READ_CHUNK: usize = 256 * 1024;

pub fn full(bytes: Bytes) -> HttpBody {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn response_body(body: ResponseBody) -> HttpBody {
    match body {
        ResponseBody::FromOutput => full(Bytes::new()),
        ResponseBody::Bytes(b) => full(b),
        ResponseBody::Files(slices) => files(slices),
    }
}

fn files(slices: Vec<FileSlice>) -> HttpBody {
    let stream = futures_util::stream::unfold(
        (slices.into_iter(), None::<FileSlice>),
        |(mut rest, mut current)| async move {
            loop {
                let slice = match current.take() {
                    Some(s) if s.len > 0 => s,
                    _ => rest.next()?,
                };
                if slice.len == 0 {
                    continue;
                }
                let want = (slice.len as usize).min(READ_CHUNK);
                let read = tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt;
                    let mut buf = vec![0u8; want];
                    let n = slice.file.read_at(&mut buf, slice.offset)?;
                    buf.truncate(n);
                    Ok::<_, std::io::Error>((slice, buf))
                })
                .await;
                let result = match read {
                    Ok(Ok((slice, buf))) if !buf.is_empty() => {
                        let n = buf.len() as u64;
                        let next = FileSlice {
                            file: slice.file,
                            offset: slice.offset + n,
                            len: slice.len - n,
                        };
                        Ok((Bytes::from(buf), next))
                    }
                    Ok(Ok(_)) => Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "object file shorter than its record",
                    )),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(std::io::Error::other(e.to_string())),
                };
                return Some(match result {
                    Ok((bytes, next)) => (Ok(Frame::data(bytes)), (rest, Some(next))),
                    // After an error the stream ends; hyper aborts the response.
                    Err(e) => (Err(e), (Vec::new().into_iter(), None)),
                });
            }
        },
    );
    http_body_util::StreamBody::new(stream).boxed_unsync()
}

/// How an incoming body is framed and what it promised.
pub struct Framing {
    /// `Some` for aws-chunked bodies.
    pub chunked: Option<ChunkedDecoder>,
    /// The signed `x-amz-content-sha256` value, checked against the received bytes at the end.
    pub content_sha256: Option<String>,
    pub decoded_length: Option<u64>,
}

/// An HTTP request body as a service reads it.
pub struct HttpSource {
    body: Incoming,
    framing: Framing,
    hash: Option<Sha256>,
    trailers: Vec<(String, String)>,
    received: u64,
    done: bool,
}

impl HttpSource {
    pub fn new(body: Incoming, framing: Framing) -> Self {
        let hash = framing
            .content_sha256
            .as_deref()
            .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|_| Sha256::new());
        HttpSource {
            body,
            framing,
            hash,
            trailers: Vec::new(),
            received: 0,
            done: false,
        }
    }

    async fn next(&mut self) -> Result<Option<Bytes>, AwsError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let frame = match self.body.frame().await {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => {
                    return Err(AwsError::new(
                        "IncompleteBody",
                        format!("The request body terminated unexpectedly: {e}"),
                    ))
                }
                None => {
                    self.done = true;
                    self.end()?;
                    return Ok(None);
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if let Some(h) = self.hash.as_mut() {
                h.update(&data);
            }
            match self.framing.chunked.as_mut() {
                None => {
                    self.received += data.len() as u64;
                    if data.is_empty() {
                        continue;
                    }
                    return Ok(Some(data));
                }
                Some(decoder) => {
                    let mut out = Vec::with_capacity(data.len());
                    decoder.push(&data, &mut out)?;
                    self.received += out.len() as u64;
                    if out.is_empty() {
                        continue;
                    }
                    return Ok(Some(Bytes::from(out)));
                }
            }
        }
    }

    fn end(&mut self) -> Result<(), AwsError> {
        if let Some(decoder) = self.framing.chunked.take() {
            self.trailers = decoder.finish()?;
        }
        if let Some(expected) = self.framing.decoded_length {
            if expected != self.received {
                return Err(AwsError::new(
                    "IncompleteBody",
                    "You did not provide the number of bytes specified by the Content-Length HTTP header",
                ));
            }
        }
        if let (Some(h), Some(claimed)) = (self.hash.take(), self.framing.content_sha256.as_deref())
        {
            nimbus_auth::check_content_sha256(claimed, &hex::encode(h.finalize()))?;
        }
        Ok(())
    }
}

impl BodySource for HttpSource {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, AwsError>> {
        Box::pin(self.next())
    }

    fn trailers(&self) -> Vec<(String, String)> {
        self.trailers.clone()
    }
}
