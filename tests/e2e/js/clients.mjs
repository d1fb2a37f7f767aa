// The AWS SDK for JavaScript v3 against nimbus, with the SDK's defaults (CRC32
// request checksums, aws-chunked trailers for streams, response checksum
// validation, SQS MD5 checks). Usage: node clients.mjs ENDPOINT; prints one JSON
// document of what came back, which test_client_js.py checks.
import { createHash, randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import { writeFileSync, createReadStream, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand, HeadObjectCommand,
  ListObjectsV2Command, DeleteObjectCommand, DeleteObjectsCommand, DeleteBucketCommand,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import {
  SQSClient, CreateQueueCommand, SendMessageCommand, ReceiveMessageCommand,
  DeleteMessageCommand, DeleteQueueCommand, GetQueueAttributesCommand,
} from "@aws-sdk/client-sqs";

const endpoint = process.argv[2];
const config = {
  endpoint,
  region: "us-east-1",
  credentials: { accessKeyId: "test", secretAccessKey: "test" },
  maxAttempts: 1,
};
const sha256 = (b) => createHash("sha256").update(b).digest("hex");
const crc32b64 = (b) => { const v = Buffer.alloc(4); v.writeUInt32BE(crc32(b)); return v.toString("base64"); };
const out = { sent: {} };

// Records how the SDK framed each signed request (the deserialize step sees the
// request as sent), so the test can tell that the defaults were exercised.
function recordHeaders(client) {
  client.middlewareStack.add((next, context) => async (args) => {
    const h = args.request.headers;
    const pick = (n) => h[n] ?? h[n.toLowerCase()] ?? null;
    (out.sent[context.commandName] ??= []).push({
      content_sha256: pick("x-amz-content-sha256"), content_encoding: pick("content-encoding"),
      trailer: pick("x-amz-trailer"), crc32: pick("x-amz-checksum-crc32"),
    });
    return next(args);
  }, { step: "deserialize", name: "nimbusRecordHeaders" });
}

async function s3Round() {
  const s3 = new S3Client(config);
  recordHeaders(s3);
  const bucket = `js-${randomBytes(6).toString("hex")}`;
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));

  // Multipart through lib-storage: 12 MiB in 5 MiB parts.
  const big = randomBytes(12 * 1024 * 1024);
  const upload = new Upload({
    client: s3, params: { Bucket: bucket, Key: "big.bin", Body: big, ContentType: "application/x-test" },
    partSize: 5 * 1024 * 1024, queueSize: 2,
  });
  const done = await upload.done();
  const PART = 5 * 1024 * 1024;
  const partCrcs = [0, PART, 2 * PART].map((o) => Buffer.from(crc32b64(big.subarray(o, o + PART)), "base64"));
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "big.bin", ChecksumMode: "ENABLED" }));
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "big.bin" }));
  const gotBytes = Buffer.from(await got.Body.transformToByteArray());
  out.multipart = {
    etag: done.ETag, sent_sha256: sha256(big), got_sha256: sha256(gotBytes),
    length: head.ContentLength, content_type: head.ContentType, checksum_crc32: head.ChecksumCRC32 ?? null,
    checksum_type: head.ChecksumType ?? null,
    composite_crc32: `${crc32b64(Buffer.concat(partCrcs))}-3`,
  };

  // A small PutObject with a Buffer body, and a stream body of known length (the
  // SDK sends streams aws-chunked with a trailing CRC32).
  const small = Buffer.from("hello from the JavaScript SDK\n");
  const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "small.txt", Body: small }));
  const dir = mkdtempSync(join(tmpdir(), "nimbus-js-"));
  const file = join(dir, "stream.bin");
  const streamed = randomBytes(3 * 1024 * 1024 + 17);
  writeFileSync(file, streamed);
  const putStream = await s3.send(new PutObjectCommand({
    Bucket: bucket, Key: "stream.bin", Body: createReadStream(file), ContentLength: streamed.length,
  }));
  rmSync(dir, { recursive: true });
  const gotStream = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "stream.bin", ChecksumMode: "ENABLED" }));
  const gotStreamBytes = Buffer.from(await gotStream.Body.transformToByteArray());
  out.put = {
    small_crc32: put.ChecksumCRC32 ?? null,
    stream_expected_crc32: crc32b64(streamed),
    stream_crc32: putStream.ChecksumCRC32 ?? null,
    stream_sent_sha256: sha256(streamed), stream_got_sha256: sha256(gotStreamBytes),
    stream_get_crc32: gotStream.ChecksumCRC32 ?? null,
  };

  // A presigned GET URL, fetched without the SDK.
  const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: "small.txt" }), { expiresIn: 300 });
  const r = await fetch(url);
  const body = Buffer.from(await r.arrayBuffer());
  out.presigned = { status: r.status, body: body.toString(), url_has_signature: url.includes("X-Amz-Signature=") };

  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
  out.keys = (listed.Contents ?? []).map((o) => o.Key).sort();
  // DeleteObjects requires an integrity header: current SDKs send a CRC32 instead of Content-MD5.
  const deleted = await s3.send(new DeleteObjectsCommand({
    Bucket: bucket, Delete: { Objects: out.keys.slice(1).map((Key) => ({ Key })) },
  }));
  out.deleted = (deleted.Deleted ?? []).map((d) => d.Key).sort();
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: out.keys[0] }));
  await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
  out.bucket_deleted = true;
}

async function sqsRound() {
  const sqs = new SQSClient(config);
  const name = `js-${randomBytes(6).toString("hex")}`;
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name }));
  const sent = await sqs.send(new SendMessageCommand({
    QueueUrl, MessageBody: "hello queue",
    MessageAttributes: { kind: { DataType: "String", StringValue: "greeting" } },
  }));
  const rec = await sqs.send(new ReceiveMessageCommand({
    QueueUrl, WaitTimeSeconds: 1, MaxNumberOfMessages: 1, MessageAttributeNames: ["All"],
  }));
  const m = (rec.Messages ?? [])[0] ?? {};
  await sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: m.ReceiptHandle }));
  const attrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["All"] }));
  await sqs.send(new DeleteQueueCommand({ QueueUrl }));
  out.sqs = {
    queue_url: QueueUrl, message_id: sent.MessageId, received_id: m.MessageId ?? null,
    body: m.Body ?? null, attribute: m.MessageAttributes?.kind?.StringValue ?? null,
    visible_after_delete: attrs.Attributes.ApproximateNumberOfMessages,
    in_flight_after_delete: attrs.Attributes.ApproximateNumberOfMessagesNotVisible,
  };
}

try {
  await s3Round();
  await sqsRound();
  console.log(JSON.stringify(out));
} catch (e) {
  console.log(JSON.stringify({ ...out, error: `${e.name}: ${e.message}`, status: e.$metadata?.httpStatusCode ?? null }));
  process.exitCode = 1;
}
