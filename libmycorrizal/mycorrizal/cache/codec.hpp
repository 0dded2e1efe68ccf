// SPDX-License-Identifier: Apache-2.0
// The Mycel protocol: what cache nodes say to each other, and its codec.
#pragma once

#include "mycorrizal/cache/version.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/expected.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

/// Cache nodes exchange these messages as the raw-bytes payloads of the
/// application "mycel" (docs/cache.md, "Protocol"): operations and
/// replication on a bucket's stream, hand-off and repair on a stream apart,
/// the bucket registry on the default stream. Every message starts with the
/// protocol version (1) and its kind; integers are LEB128 varints (signed
/// ones zigzag-encoded), strings and byte strings a varint length and the
/// bytes. A decoder takes any bytes: it never reads past the end, never
/// allocates more than the input can fill, and answers malformed input
/// with an error.
namespace mycorrizal::cache::proto {

inline constexpr uint8_t protocol_version = 1;

/// Longest bucket name: a bucket's stream names add two bytes to it, and
/// stream names are at most 255 bytes.
inline constexpr size_t max_bucket_name = 253;

/// Most partitions of a bucket.
inline constexpr uint32_t max_partitions = 65536;

/// Most owners of a partition.
inline constexpr uint32_t max_rf = 7;

using bytes = std::vector<std::byte>;

/// How many owners acknowledge a write before it is acknowledged.
enum class ack_mode : uint8_t {
  /// Every owner alive (the default).
  all = 0,
  /// The primary alone; replicas follow asynchronously.
  primary = 1,
};

/// A bucket's settings, the same on every node.
struct bucket_options {
  uint32_t partitions = 271;
  uint32_t rf = 2;
  ack_mode ack = ack_mode::all;
  /// TTL of a put that names none (0: none).
  int64_t default_ttl_ms = 0;
  /// Per node (0: no limit).
  uint64_t max_entries = 0;
  uint64_t max_bytes = 0;

  friend bool operator==(const bucket_options&, const bucket_options&)
    = default;
};

/// @returns `errc::invalid_config` naming the bad field.
expected<void> validate(const bucket_options& x);

/// A bucket in the registry.
struct bucket_def {
  std::string name;
  bucket_options options;
  /// When it was created (or dropped): of two definitions of one name, the
  /// newer one holds.
  version ver;
  bool dropped = false;

  friend bool operator==(const bucket_def&, const bucket_def&) = default;
};

/// What a record says of its key.
enum class record_kind : uint8_t {
  /// The key holds `value`.
  value = 0,
  /// The key was deleted (a tombstone).
  tombstone = 1,
  /// The primary evicted or expired the key: owners drop it (if they hold
  /// `ver` or older) and keep no tombstone.
  dropped = 2,
};

/// One key's state.
struct record {
  std::string key;
  bytes value;
  version ver;
  int64_t expires_ms = 0;
  record_kind kind = record_kind::value;

  friend bool operator==(const record&, const record&) = default;
};

/// What a client operation does.
enum class op_code : uint8_t {
  get = 1,
  put = 2,
  del = 3,
  /// Sets the expiry (`expires_ms`; 0 persists).
  expire = 4,
  /// The expiry of a key.
  ttl = 5,
  /// Adds `delta` to a decimal integer value (atomic at the primary).
  incr = 6,
  /// Put if the key holds version `expected` (the empty version: absent).
  cas = 7,
};

/// The highest `op_code` value.
constexpr uint8_t max_op_code = 7;

/// "get", "put", ... ("unknown" for a value outside the enum).
std::string_view to_string(op_code x) noexcept;

/// Flags of a put.
enum op_flags : uint8_t {
  /// Only if the key is absent (SET NX).
  only_if_absent = 1,
  /// Only if the key is present (SET XX).
  only_if_present = 2,
  /// Answer with the previous value (SET GET).
  return_previous = 4,
  /// Keep the key's expiry (SET KEEPTTL).
  keep_ttl = 8,
  /// del and expire: only if the key holds version `expected` (a
  /// read-modify-write such as GETDEL, GETEX or EXPIRE GT; `version_mismatch`
  /// otherwise).
  only_if_version = 16,
};
inline constexpr uint8_t op_flags_mask = 31;

/// A client operation, sent to a partition's primary (or, for reads, the
/// next owner).
struct op_request {
  op_code op = op_code::get;
  std::string bucket;
  std::string key;
  bytes value;
  /// Absolute expiry (Unix ms; 0: none, or the bucket's default TTL for a
  /// put without `keep_ttl`).
  int64_t expires_ms = 0;
  uint8_t flags = 0;
  int64_t delta = 0;
  version expected;

  friend bool operator==(const op_request&, const op_request&) = default;
};

/// The answer to an `op_request`, and the acknowledgement of `entries`.
struct op_reply {
  /// `errc::none` on success.
  errc status = errc::none;
  /// The error's context.
  std::string message;
  /// A value (get, return_previous) was found.
  bool found = false;
  bytes value;
  version ver;
  int64_t expires_ms = 0;
  /// incr's new value.
  int64_t number = 0;

  friend bool operator==(const op_reply&, const op_reply&) = default;
};

/// Why records travel.
enum class transfer : uint8_t {
  /// A primary's write to its replicas.
  replicate = 0,
  /// A partition moving to a new owner.
  handoff = 1,
  /// Anti-entropy: what the other owner lacks.
  repair = 2,
};

/// Records of one partition.
struct entries {
  std::string bucket;
  uint32_t partition = 0;
  transfer why = transfer::replicate;
  /// The last batch of a hand-off.
  bool last = false;
  std::vector<record> records;

  friend bool operator==(const entries&, const entries&) = default;
};

/// One partition's digest (`partition_digest`).
struct digest_entry {
  uint32_t partition = 0;
  uint64_t digest = 0;
  uint64_t count = 0;

  friend bool operator==(const digest_entry&, const digest_entry&) = default;
};

/// Digests of the partitions two owners share: the receiver answers with
/// its own for the same partitions.
struct digests {
  std::string bucket;
  std::vector<digest_entry> parts;

  friend bool operator==(const digests&, const digests&) = default;
};

/// A key and the version its owner holds.
struct key_version {
  std::string key;
  version ver;

  friend bool operator==(const key_version&, const key_version&) = default;
};

/// Every key of a partition whose digests differ, with its version: the
/// receiver answers with `entries` (repair) holding what the sender lacks
/// and `wanted` naming what it lacks itself.
struct versions {
  std::string bucket;
  uint32_t partition = 0;
  std::vector<key_version> keys;

  friend bool operator==(const versions&, const versions&) = default;
};

/// The answer to `versions`.
struct versions_reply {
  /// Records the sender of `versions` lacks or holds older.
  std::vector<record> records;
  /// Keys the sender holds newer: to send back as `entries` (repair).
  std::vector<std::string> wanted;

  friend bool operator==(const versions_reply&, const versions_reply&)
    = default;
};

/// The bucket registry, or a change of it.
struct buckets {
  std::vector<bucket_def> defs;

  friend bool operator==(const buckets&, const buckets&) = default;
};

/// The keys of partitions [partition, ...) of a bucket, from its primary:
/// one partition at least, more while fewer than `count` keys came.
struct scan_request {
  std::string bucket;
  uint32_t partition = 0;
  uint32_t count = 10;

  friend bool operator==(const scan_request&, const scan_request&) = default;
};

struct scan_reply {
  errc status = errc::none;
  std::vector<std::string> keys;
  /// The partition to continue from (the bucket's partition count: done).
  uint32_t next = 0;

  friend bool operator==(const scan_reply&, const scan_reply&) = default;
};

/// One write of `replicas`: a record and its partition.
struct replica_write {
  uint32_t partition = 0;
  record rec;

  friend bool operator==(const replica_write&, const replica_write&) = default;
};

/// A primary's writes for one other owner, of any partitions of a bucket:
/// the writes of one round (a client's pipelined commands, a batch of
/// forwarded operations) in one message instead of one `entries` each.
/// Acknowledged as `entries` are (`op_reply`, `number` the records that
/// changed something); the receiver takes all of them or, with an error,
/// none.
struct replicas {
  std::string bucket;
  std::vector<replica_write> writes;

  friend bool operator==(const replicas&, const replicas&) = default;
};

/// Operations of one bucket for one owner in one message: a round of a
/// client's pipelined commands whose keys that owner runs. Answered by
/// `op_replies`, one reply per operation in their order; each operation
/// succeeds or fails on its own, as if sent alone.
struct op_batch {
  std::vector<op_request> ops;

  friend bool operator==(const op_batch&, const op_batch&) = default;
};

/// The answer to `op_batch`.
struct op_replies {
  std::vector<op_reply> replies;

  friend bool operator==(const op_replies&, const op_replies&) = default;
};

using message = std::variant<op_request, op_reply, entries, digests, versions,
                             versions_reply, buckets, scan_request, scan_reply,
                             replicas, op_batch, op_replies>;

/// Appends the encoding of `x` to `out`.
void encode(const message& x, bytes& out);

/// The encoding of `x`.
bytes encode(const message& x);

/// Decodes one message that spans all of `in`.
/// @returns `unsupported_version`, `unknown_frame_type`, `malformed_frame`
///   (truncated, trailing bytes, bad enum or flags), `too_large` (a key or
///   value above the limits of store.hpp), `invalid_identifier` (a bucket
///   name) or `too_many_entries`.
expected<message> decode(std::span<const std::byte> in);

/// A valid bucket name: 1..253 bytes of printable UTF-8.
expected<void> check_bucket_name(std::string_view name);

} // namespace mycorrizal::cache::proto
