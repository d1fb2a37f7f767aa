//! Request and response bodies that are too large to hold in memory: S3
//! object data. A service that streams (see [`Service::call_streaming`]) reads
//! the request body chunk by chunk from a [`RequestBody`], already unwrapped
//! from any transfer framing (aws-chunked) and checked against what the
//! signature promised, and answers with a [`ResponseBody`] that the edge
//! sends without loading it whole: bytes in memory, or ranges of files.
//!
//! [`Service::call_streaming`]: crate::Service::call_streaming

use crate::{AwsError, BoxFuture};
use bytes::Bytes;
use std::fs::File;

/// Where request body chunks come from; the edge implements it over the HTTP body.
pub trait BodySource: Send {
    /// The next chunk, or `None` at the end of the body.
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, AwsError>>;
    /// Trailing headers (aws-chunked trailers such as `x-amz-checksum-crc32`), known once the body has ended.
    fn trailers(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// A request body handed to a streaming service.
pub struct RequestBody {
    source: Box<dyn BodySource>,
    /// The decoded length when the client declared it (Content-Length or x-amz-decoded-content-length).
    pub declared_length: Option<u64>,
    /// Names of the trailers announced in `x-amz-trailer`, lower-case.
    pub announced_trailers: Vec<String>,
}

impl RequestBody {
    pub fn new(source: Box<dyn BodySource>, declared_length: Option<u64>) -> Self {
        RequestBody {
            source,
            declared_length,
            announced_trailers: Vec::new(),
        }
    }

    /// A body held in memory already.
    pub fn from_bytes(bytes: Bytes) -> Self {
        let len = bytes.len() as u64;
        RequestBody::new(Box::new(InMemory(Some(bytes))), Some(len))
    }

    pub fn empty() -> Self {
        RequestBody::from_bytes(Bytes::new())
    }

    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, AwsError> {
        self.source.next_chunk().await
    }

    pub fn trailers(&self) -> Vec<(String, String)> {
        self.source.trailers()
    }

    /// Reads the whole body, refusing more than `limit` bytes with `too_large`.
    pub async fn collect(&mut self, limit: usize, too_large: AwsError) -> Result<Bytes, AwsError> {
        let mut first: Option<Bytes> = None;
        let mut joined: Vec<u8> = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            let total = joined.len() + first.as_ref().map_or(0, Bytes::len) + chunk.len();
            if total > limit {
                return Err(too_large);
            }
            match first.take() {
                None if joined.is_empty() => first = Some(chunk),
                taken => {
                    if let Some(f) = taken {
                        joined.extend_from_slice(&f);
                    }
                    joined.extend_from_slice(&chunk);
                }
            }
        }
        Ok(match first {
            Some(only) => only,
            None => Bytes::from(joined),
        })
    }
}

struct InMemory(Option<Bytes>);

impl BodySource for InMemory {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, AwsError>> {
        let next = self.0.take().filter(|b| !b.is_empty());
        Box::pin(async move { Ok(next) })
    }
}

/// One piece of a response body kept in a file.
#[derive(Debug)]
pub struct FileSlice {
    pub file: File,
    pub offset: u64,
    pub len: u64,
}

/// What a streaming service answers with besides its output value.
#[derive(Debug, Default)]
pub enum ResponseBody {
    /// The output value's payload member (if any) is the body, as for every other service.
    #[default]
    FromOutput,
    Bytes(Bytes),
    /// Consecutive file ranges (an object stored in parts is several files).
    Files(Vec<FileSlice>),
}

/// An operation's answer: the output value and, for streaming services, its body.
#[derive(Debug, Default)]
pub struct Reply {
    pub output: serde_json::Value,
    pub body: ResponseBody,
    /// A status other than the operation's usual one (206 for a range, 202 for an accepted restore).
    pub status: Option<u16>,
}

impl Reply {
    pub fn new(output: serde_json::Value) -> Self {
        Reply {
            output,
            body: ResponseBody::FromOutput,
            status: None,
        }
    }

    pub fn len(&self) -> u64 {
        match &self.body {
            ResponseBody::FromOutput => 0,
            ResponseBody::Bytes(b) => b.len() as u64,
            ResponseBody::Files(files) => files.iter().map(|f| f.len).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
