//! One function per S3 operation, grouped by what they act on; [`dispatch`]
//! maps the model's operation names to them.

pub mod buckets;
pub mod config;
pub mod lifecycle_run;
pub mod list;
pub mod multipart;
pub mod objects;
pub mod website_host;

use crate::Inner;
use nimbus_core::{AwsError, Reply, RequestBody, RequestContext};
use serde_json::Value;

pub async fn dispatch(
    inner: &Inner,
    ctx: &RequestContext,
    operation: &str,
    input: Value,
    body: RequestBody,
) -> Result<Reply, AwsError> {
    let value = |v: Result<Value, AwsError>| v.map(Reply::new);
    // Account-level operations have no bucket whose policy could admit an anonymous caller.
    if ctx.access_key_id.is_none() && matches!(operation, "CreateBucket" | "ListBuckets") {
        return Err(crate::errors::access_denied());
    }
    match operation {
        "PutObject" => value(objects::put_object(inner, ctx, &input, body).await),
        "GetObject" => objects::get_object(inner, ctx, &input, false),
        "HeadObject" => objects::get_object(inner, ctx, &input, true),
        "DeleteObject" => value(objects::delete_object(inner, ctx, &input).await),
        "DeleteObjects" => value(objects::delete_objects(inner, ctx, &input).await),
        "CopyObject" => value(objects::copy_object(inner, ctx, &input).await),
        "PutObjectTagging" => value(objects::put_object_tagging(inner, ctx, &input).await),
        "GetObjectTagging" => value(objects::get_object_tagging(inner, ctx, &input)),
        "DeleteObjectTagging" => value(objects::delete_object_tagging(inner, ctx, &input).await),
        "PutObjectAcl" => value(objects::put_object_acl(inner, ctx, &input).await),
        "GetObjectAcl" => value(objects::get_object_acl(inner, ctx, &input)),
        "GetObjectAttributes" => value(objects::get_object_attributes(inner, ctx, &input)),
        "ListObjects" => value(list::list_objects(inner, ctx, &input, false)),
        "ListObjectsV2" => value(list::list_objects(inner, ctx, &input, true)),
        "ListObjectVersions" => value(list::list_object_versions(inner, ctx, &input)),
        "CreateMultipartUpload" => value(multipart::create(inner, ctx, &input).await),
        "UploadPart" => value(multipart::upload_part(inner, ctx, &input, body).await),
        "UploadPartCopy" => value(multipart::upload_part_copy(inner, ctx, &input).await),
        "ListParts" => value(multipart::list_parts(inner, ctx, &input)),
        "ListMultipartUploads" => value(multipart::list_uploads(inner, ctx, &input)),
        "CompleteMultipartUpload" => value(multipart::complete(inner, ctx, &input).await),
        "AbortMultipartUpload" => value(multipart::abort(inner, ctx, &input).await),
        "CreateBucket" => value(buckets::create_bucket(inner, ctx, &input).await),
        "HeadBucket" => value(buckets::head_bucket(inner, ctx, &input)),
        "ListBuckets" => value(buckets::list_buckets(inner, ctx, &input)),
        "DeleteBucket" => value(buckets::delete_bucket(inner, ctx, &input).await),
        "GetBucketLocation" => value(buckets::get_bucket_location(inner, ctx, &input)),
        // S3 answers these two with 204 although the model names no code.
        "PutBucketTagging" | "PutBucketPolicy" => {
            let mut reply = Reply::new(config::call(inner, ctx, operation, &input).await?);
            reply.status = Some(204);
            Ok(reply)
        }
        "RestoreObject" => objects::restore_object(inner, ctx, &input).await,
        other => value(config::call(inner, ctx, other, &input).await),
    }
}
