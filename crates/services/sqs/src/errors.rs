//! Every error SQS can answer with, in one place, with the code (the model's
//! error shape name where the model has one, SQS's plain code otherwise), the
//! HTTP status and the message text SQS itself uses. Handlers call these
//! constructors instead of spelling messages inline so that the same mistake
//! reads the same way from every operation.

use nimbus_core::AwsError;

pub fn queue_does_not_exist() -> AwsError {
    AwsError::new("QueueDoesNotExist", "The specified queue does not exist.")
}

pub fn queue_name_exists(attribute: &str) -> AwsError {
    AwsError::new(
        "QueueNameExists",
        format!("A queue already exists with the same name and a different value for attribute {attribute}"),
    )
}

pub fn queue_deleted_recently() -> AwsError {
    AwsError::new(
        "QueueDeletedRecently",
        "You must wait 60 seconds after deleting a queue before you can create another with the same name.",
    )
}

pub fn invalid_queue_name(fifo: bool) -> AwsError {
    if fifo {
        AwsError::invalid_parameter(
            "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, \
             must end with .fifo suffix and be 1 to 80 in length",
        )
    } else {
        AwsError::invalid_parameter(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length",
        )
    }
}

pub fn unknown_attribute(name: &str) -> AwsError {
    AwsError::new("InvalidAttributeName", format!("Unknown Attribute {name}."))
}

pub fn fifo_only_attribute(name: &str) -> AwsError {
    AwsError::new(
        "InvalidAttributeName",
        format!("You can specify the {name} only when FifoQueue is set to true."),
    )
}

pub fn invalid_attribute_value(name: &str) -> AwsError {
    AwsError::new(
        "InvalidAttributeValue",
        format!("Invalid value for the parameter {name}."),
    )
}

pub fn invalid_attribute_value_reason(name: &str, reason: &str) -> AwsError {
    AwsError::new(
        "InvalidAttributeValue",
        format!("Invalid value for the parameter {name}. Reason: {reason}"),
    )
}

/// `Value X for parameter P is invalid. Reason: R` — the shape of most of SQS's
/// InvalidParameterValue messages.
pub fn invalid_value(value: impl std::fmt::Display, parameter: &str, reason: &str) -> AwsError {
    AwsError::invalid_parameter(format!(
        "Value {value} for parameter {parameter} is invalid. Reason: {reason}"
    ))
}

pub fn missing(parameter: &str) -> AwsError {
    AwsError::missing_parameter(parameter)
}

pub fn receipt_handle_invalid(handle: &str) -> AwsError {
    AwsError::new(
        "ReceiptHandleIsInvalid",
        format!("The input receipt handle \"{handle}\" is not a valid receipt handle."),
    )
}

pub fn receipt_handle_expired(handle: &str) -> AwsError {
    invalid_value(handle, "ReceiptHandle", "The receipt handle has expired.")
}

pub fn visibility_target_gone(handle: &str) -> AwsError {
    invalid_value(
        handle,
        "ReceiptHandle",
        "Message does not exist or is not available for visibility timeout change.",
    )
}

pub fn message_not_inflight() -> AwsError {
    AwsError::new(
        "MessageNotInflight",
        "The message referred to isn't in flight.",
    )
}

pub fn purge_in_progress(queue_name: &str) -> AwsError {
    AwsError::new(
        "PurgeQueueInProgress",
        format!("Only one PurgeQueue operation on {queue_name} is allowed every 60 seconds."),
    )
    .with_status(403)
}

pub fn empty_batch(entry_shape: &str) -> AwsError {
    AwsError::new(
        "EmptyBatchRequest",
        format!("There should be at least one {entry_shape} in the request."),
    )
}

pub fn too_many_entries(n: usize) -> AwsError {
    AwsError::new(
        "TooManyEntriesInBatchRequest",
        format!("Maximum number of entries per request are 10. You have sent {n}."),
    )
}

pub fn invalid_batch_entry_id() -> AwsError {
    AwsError::new(
        "InvalidBatchEntryId",
        "A batch entry id can only contain alphanumeric characters, hyphens and underscores. \
         It can be at most 80 letters long.",
    )
}

pub fn batch_ids_not_distinct(id: &str) -> AwsError {
    AwsError::new("BatchEntryIdsNotDistinct", format!("Id {id} repeated."))
}

pub fn batch_too_long(limit: usize, sent: usize) -> AwsError {
    AwsError::new(
        "BatchRequestTooLong",
        format!("Batch requests cannot be longer than {limit} bytes. You have sent {sent} bytes."),
    )
}

pub fn invalid_message_contents() -> AwsError {
    AwsError::new(
        "InvalidMessageContents",
        "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | \
         #xE000 to #xFFFD | #x10000 to #x10FFFF",
    )
}

pub fn resource_not_found(message: &str) -> AwsError {
    AwsError::new("ResourceNotFoundException", message).with_status(404)
}

pub fn arn_not_found(parameter: &str) -> AwsError {
    resource_not_found(&format!(
        "The resource that you specified for the {parameter} parameter doesn't exist."
    ))
}

pub fn bad_arn(parameter: &str) -> AwsError {
    AwsError::invalid_parameter(format!(
        "You must use this format to specify the {parameter}: arn:<partition>:<service>:<region>:<account-id>:<resource-id>"
    ))
}

pub fn over_limit(message: String) -> AwsError {
    AwsError::new("OverLimit", message).with_status(403)
}

pub fn store_failed(e: impl std::fmt::Display) -> AwsError {
    tracing::error!("sqs: durable write failed: {e}");
    AwsError::internal("The request could not be stored durably; try again.")
}
