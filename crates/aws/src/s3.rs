//! The store on S3, with the same key layout as the local store. The production pointer moves
//! by conditional writes (`If-None-Match: *`, `If-Match: ETAG`).

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
use aws_sdk_s3::primitives::ByteStream;
use mlops_core::{Condition, ErrorKind, Store, StoreError, Tagged};
use std::ops::Range;
use tokio::runtime::Handle;

/// A bucket as a [`Store`]. Its methods block on the async SDK: call them from a blocking
/// thread, never from async code.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    runtime: Handle,
}

impl S3Store {
    /// A store on `bucket`, running requests on the current tokio runtime.
    pub fn new(config: &aws_config::SdkConfig, bucket: impl Into<String>) -> S3Store {
        // A custom endpoint (LocalStack, moto) takes path-style addressing.
        let path_style = config.endpoint_url().is_some() || crate::custom_endpoint();
        let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).build();
        S3Store { client: Client::from_conf(s3), bucket: bucket.into(), runtime: Handle::current() }
    }

    fn block<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// An object's metadata; `None` when absent.
    fn head(&self, key: &str) -> Result<Option<HeadObjectOutput>, StoreError> {
        self.block(async {
            match self.client.head_object().bucket(&self.bucket).key(key).send().await {
                Ok(head) => Ok(Some(head)),
                Err(error) if error.as_service_error().is_some_and(HeadObjectError::is_not_found) || status(&error) == Some(404) => {
                    Ok(None)
                }
                Err(error) if status(&error) == Some(403) => self.absent_or(key, failure(key, error)).await,
                Err(error) => Err(failure(key, error)),
            }
        })
    }

    /// After a 403 on reading `key`: S3 answers 403 for a missing key when the caller may not
    /// list it, so the key is listed. Absent from the listing, it is missing (`Ok(None)`);
    /// listed, or not listable either, the read was really denied (`denied`).
    async fn absent_or<T>(&self, key: &str, denied: StoreError) -> Result<Option<T>, StoreError> {
        match self.client.list_objects_v2().bucket(&self.bucket).prefix(key).max_keys(1).send().await {
            Ok(page) if !page.contents().iter().any(|o| o.key() == Some(key)) => Ok(None),
            _ => Err(denied),
        }
    }
}

/// A store error for a failed request, of the kind [`crate::kind_of`] gives it.
fn failure<E: ProvideErrorMetadata + std::error::Error + 'static>(key: &str, error: SdkError<E, HttpResponse>) -> StoreError {
    StoreError::Backend { key: key.to_string(), message: crate::error_message(&error), kind: crate::kind_of(&error) }
}

fn status<E>(error: &SdkError<E, HttpResponse>) -> Option<u16> {
    error.raw_response().map(|r| r.status().as_u16())
}

impl Store for S3Store {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_tagged(key)?.map(|t| t.bytes))
    }

    fn get_tagged(&self, key: &str) -> Result<Option<Tagged>, StoreError> {
        self.block(async {
            match self.client.get_object().bucket(&self.bucket).key(key).send().await {
                Ok(object) => {
                    let etag = object.e_tag().unwrap_or_default().to_string();
                    let bytes = object.body.collect().await.map_err(|e| StoreError::Backend {
                        key: key.into(),
                        message: e.to_string(),
                        kind: ErrorKind::Transient,
                    })?;
                    Ok(Some(Tagged { bytes: bytes.into_bytes().to_vec(), etag }))
                }
                Err(error) if error.as_service_error().is_some_and(GetObjectError::is_no_such_key) => Ok(None),
                Err(error) if status(&error) == Some(403) => self.absent_or(key, failure(key, error)).await,
                Err(error) => Err(failure(key, error)),
            }
        })
    }

    fn etag(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.head(key)?.map(|head| head.e_tag().unwrap_or_default().to_string()))
    }

    fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.head(key)?.map(|head| head.content_length().unwrap_or_default().max(0) as u64))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Option<Vec<u8>>, StoreError> {
        if range.is_empty() {
            // S3 refuses an empty range (416); whether the key exists is still answered.
            return Ok(self.size(key)?.map(|_| Vec::new()));
        }
        self.block(async {
            let request = self.client.get_object().bucket(&self.bucket).key(key).range(format!("bytes={}-{}", range.start, range.end - 1));
            match request.send().await {
                Ok(object) => {
                    let bytes = object.body.collect().await.map_err(|e| StoreError::Backend {
                        key: key.into(),
                        message: e.to_string(),
                        kind: ErrorKind::Transient,
                    })?;
                    Ok(Some(bytes.into_bytes().to_vec()))
                }
                // 416: the range starts at or past the end of the object.
                Err(error) if status(&error) == Some(416) => Ok(Some(Vec::new())),
                Err(error) if error.as_service_error().is_some_and(GetObjectError::is_no_such_key) => Ok(None),
                Err(error) if status(&error) == Some(403) => self.absent_or(key, failure(key, error)).await,
                Err(error) => Err(failure(key, error)),
            }
        })
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.block(async {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(ByteStream::from(bytes.to_vec()))
                .send()
                .await
                .map_err(|e| failure(key, e))?;
            Ok(())
        })
    }

    fn put_if(&self, key: &str, bytes: &[u8], condition: Condition) -> Result<String, StoreError> {
        self.block(async {
            let request = self.client.put_object().bucket(&self.bucket).key(key).body(ByteStream::from(bytes.to_vec()));
            let request = match condition {
                Condition::Absent => request.if_none_match("*"),
                Condition::Matches(etag) => request.if_match(etag),
            };
            match request.send().await {
                Ok(put) => Ok(put.e_tag().unwrap_or_default().to_string()),
                // 412: the condition failed; 409: a concurrent conditional write is in flight.
                Err(error) if matches!(status(&error), Some(412 | 409)) => Err(StoreError::PreconditionFailed { key: key.to_string() }),
                Err(error) => Err(failure(key, error)),
            }
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.block(async {
            let mut keys = Vec::new();
            let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| failure(prefix, e))?;
                keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            }
            keys.sort();
            Ok(keys)
        })
    }

    fn location(&self) -> String {
        format!("s3://{}", self.bucket)
    }
}
