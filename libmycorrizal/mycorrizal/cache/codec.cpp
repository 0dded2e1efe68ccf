// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/cache/codec.hpp"

#include "mycorrizal/cache/store.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/wire/identifier.hpp"

#include <fmt/format.h>

#include <string_view>
#include <type_traits>

namespace mycorrizal::cache::proto {

std::string_view to_string(op_code x) noexcept {
  switch (x) {
    case op_code::get: return "get";
    case op_code::put: return "put";
    case op_code::del: return "del";
    case op_code::expire: return "expire";
    case op_code::ttl: return "ttl";
    case op_code::incr: return "incr";
    case op_code::cas: return "cas";
  }
  return "unknown";
}

namespace {

/// Message kinds on the wire (the variant's order is not the wire's).
enum class kind : uint8_t {
  op_request = 1,
  op_reply = 2,
  entries = 3,
  digests = 4,
  versions = 5,
  versions_reply = 6,
  buckets = 7,
  scan_request = 8,
  scan_reply = 9,
  replicas = 10,
  op_batch = 11,
  op_replies = 12,
};

template <class T>
constexpr kind kind_of() {
  if constexpr (std::is_same_v<T, op_request>) {
    return kind::op_request;
  } else if constexpr (std::is_same_v<T, op_reply>) {
    return kind::op_reply;
  } else if constexpr (std::is_same_v<T, entries>) {
    return kind::entries;
  } else if constexpr (std::is_same_v<T, digests>) {
    return kind::digests;
  } else if constexpr (std::is_same_v<T, versions>) {
    return kind::versions;
  } else if constexpr (std::is_same_v<T, versions_reply>) {
    return kind::versions_reply;
  } else if constexpr (std::is_same_v<T, buckets>) {
    return kind::buckets;
  } else if constexpr (std::is_same_v<T, scan_request>) {
    return kind::scan_request;
  } else if constexpr (std::is_same_v<T, scan_reply>) {
    return kind::scan_reply;
  } else if constexpr (std::is_same_v<T, replicas>) {
    return kind::replicas;
  } else if constexpr (std::is_same_v<T, op_batch>) {
    return kind::op_batch;
  } else {
    static_assert(std::is_same_v<T, op_replies>);
    return kind::op_replies;
  }
}

// -- writing ------------------------------------------------------------------

class writer {
public:
  explicit writer(bytes& out) : out_(out) {
    // nop
  }

  void u8(uint8_t x) {
    out_.push_back(static_cast<std::byte>(x));
  }

  void varint(uint64_t x) {
    while (x >= 0x80) {
      u8(static_cast<uint8_t>(x | 0x80));
      x >>= 7;
    }
    u8(static_cast<uint8_t>(x));
  }

  void signed_varint(int64_t x) {
    // Zigzag: small magnitudes stay short whatever the sign.
    varint((static_cast<uint64_t>(x) << 1) ^ static_cast<uint64_t>(x >> 63));
  }

  void str(std::string_view x) {
    varint(x.size());
    auto* p = reinterpret_cast<const std::byte*>(x.data());
    out_.insert(out_.end(), p, p + x.size());
  }

  void blob(const bytes& x) {
    varint(x.size());
    out_.insert(out_.end(), x.begin(), x.end());
  }

  void ver(const version& v) {
    signed_varint(v.wall_ms);
    varint(v.counter);
    varint(v.node);
  }

private:
  bytes& out_;
};

void put(writer& w, const bucket_options& x) {
  w.varint(x.partitions);
  w.varint(x.rf);
  w.u8(static_cast<uint8_t>(x.ack));
  w.signed_varint(x.default_ttl_ms);
  w.varint(x.max_entries);
  w.varint(x.max_bytes);
}

void put(writer& w, const record& x) {
  w.str(x.key);
  w.ver(x.ver);
  w.u8(static_cast<uint8_t>(x.kind));
  if (x.kind == record_kind::value) {
    w.blob(x.value);
    w.signed_varint(x.expires_ms);
  }
}

void put(writer& w, const op_request& x) {
  w.u8(static_cast<uint8_t>(x.op));
  w.str(x.bucket);
  w.str(x.key);
  w.blob(x.value);
  w.signed_varint(x.expires_ms);
  w.u8(x.flags);
  w.signed_varint(x.delta);
  w.ver(x.expected);
}

void put(writer& w, const op_reply& x) {
  w.u8(static_cast<uint8_t>(x.status));
  w.str(x.message);
  w.u8(x.found ? 1 : 0);
  w.blob(x.value);
  w.ver(x.ver);
  w.signed_varint(x.expires_ms);
  w.signed_varint(x.number);
}

void put(writer& w, const entries& x) {
  w.str(x.bucket);
  w.varint(x.partition);
  w.u8(static_cast<uint8_t>(x.why));
  w.u8(x.last ? 1 : 0);
  w.varint(x.records.size());
  for (auto& r : x.records) {
    put(w, r);
  }
}

void put(writer& w, const digests& x) {
  w.str(x.bucket);
  w.varint(x.parts.size());
  for (auto& d : x.parts) {
    w.varint(d.partition);
    w.varint(d.digest);
    w.varint(d.count);
  }
}

void put(writer& w, const versions& x) {
  w.str(x.bucket);
  w.varint(x.partition);
  w.varint(x.keys.size());
  for (auto& k : x.keys) {
    w.str(k.key);
    w.ver(k.ver);
  }
}

void put(writer& w, const versions_reply& x) {
  w.varint(x.records.size());
  for (auto& r : x.records) {
    put(w, r);
  }
  w.varint(x.wanted.size());
  for (auto& k : x.wanted) {
    w.str(k);
  }
}

void put(writer& w, const buckets& x) {
  w.varint(x.defs.size());
  for (auto& d : x.defs) {
    w.str(d.name);
    put(w, d.options);
    w.ver(d.ver);
    w.u8(d.dropped ? 1 : 0);
  }
}

void put(writer& w, const scan_request& x) {
  w.str(x.bucket);
  w.varint(x.partition);
  w.varint(x.count);
}

void put(writer& w, const scan_reply& x) {
  w.u8(static_cast<uint8_t>(x.status));
  w.varint(x.keys.size());
  for (auto& k : x.keys) {
    w.str(k);
  }
  w.varint(x.next);
}

void put(writer& w, const replicas& x) {
  w.str(x.bucket);
  w.varint(x.writes.size());
  for (auto& one : x.writes) {
    w.varint(one.partition);
    put(w, one.rec);
  }
}

void put(writer& w, const op_batch& x) {
  w.varint(x.ops.size());
  for (auto& op : x.ops) {
    put(w, op);
  }
}

void put(writer& w, const op_replies& x) {
  w.varint(x.replies.size());
  for (auto& r : x.replies) {
    put(w, r);
  }
}

// -- reading ------------------------------------------------------------------

/// Reads from a span; the first failure sticks (later reads return zeros)
/// and `fail` keeps the first reason.
class reader {
public:
  explicit reader(std::span<const std::byte> in) : in_(in) {
    // nop
  }

  bool ok() const noexcept {
    return !err_;
  }

  bool at_end() const noexcept {
    return pos_ == in_.size();
  }

  size_t remaining() const noexcept {
    return in_.size() - pos_;
  }

  error take_error() {
    return std::move(err_);
  }

  void fail(errc code, std::string what) {
    if (!err_) {
      err_ = error{code, std::move(what)};
    }
  }

  uint8_t u8(const char* what) {
    if (!ok()) {
      return 0;
    }
    if (pos_ >= in_.size()) {
      fail(errc::malformed_frame, fmt::format("truncated at {}", what));
      return 0;
    }
    return static_cast<uint8_t>(in_[pos_++]);
  }

  bool flag(const char* what) {
    auto x = u8(what);
    if (x > 1) {
      fail(errc::malformed_frame, fmt::format("{} is {}, not 0 or 1", what, x));
    }
    return x == 1;
  }

  uint64_t varint(const char* what) {
    uint64_t result = 0;
    for (int shift = 0; ok(); shift += 7) {
      auto b = u8(what);
      if (shift == 63 && b > 1) {
        fail(errc::malformed_frame, fmt::format("{} overflows 64 bits", what));
        return 0;
      }
      result |= uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) {
        return result;
      }
    }
    return 0;
  }

  uint32_t u32(const char* what, uint32_t max) {
    auto x = varint(what);
    if (x > max) {
      fail(errc::malformed_frame, fmt::format("{} {} above {}", what, x, max));
      return 0;
    }
    return static_cast<uint32_t>(x);
  }

  int64_t signed_varint(const char* what) {
    auto x = varint(what);
    return static_cast<int64_t>((x >> 1) ^ (~(x & 1) + 1));
  }

  /// A length that the rest of the input can hold, at most `max`.
  size_t length(const char* what, size_t max) {
    auto n = varint(what);
    if (!ok()) {
      return 0;
    }
    if (n > max) {
      fail(errc::too_large,
           fmt::format("{} of {} bytes (at most {})", what, n, max));
      return 0;
    }
    if (n > remaining()) {
      fail(errc::malformed_frame,
           fmt::format("{} of {} bytes, {} left", what, n, remaining()));
      return 0;
    }
    return static_cast<size_t>(n);
  }

  /// A count of items that take at least `min_size` bytes each.
  size_t count(const char* what, size_t min_size) {
    auto n = varint(what);
    if (!ok()) {
      return 0;
    }
    if (n > remaining() / min_size) {
      fail(errc::too_many_entries,
           fmt::format("{} {} in {} bytes", what, n, remaining()));
      return 0;
    }
    return static_cast<size_t>(n);
  }

  std::string str(const char* what, size_t max) {
    auto n = length(what, max);
    std::string out(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return out;
  }

  bytes blob(const char* what, size_t max) {
    auto n = length(what, max);
    bytes out(in_.begin() + static_cast<ptrdiff_t>(pos_),
              in_.begin() + static_cast<ptrdiff_t>(pos_ + n));
    pos_ += n;
    return out;
  }

  version ver(const char* what) {
    version v;
    v.wall_ms = signed_varint(what);
    v.counter = u32(what, UINT32_MAX);
    v.node = varint(what);
    return v;
  }

  std::string bucket() {
    auto name = str("bucket name", max_bucket_name);
    if (ok()) {
      if (auto ok_name = check_bucket_name(name); !ok_name) {
        fail(ok_name.error().code(), ok_name.error().context());
      }
    }
    return name;
  }

  std::string key() {
    return str("key", max_key_size);
  }

private:
  std::span<const std::byte> in_;
  size_t pos_ = 0;
  error err_;
};

void get(reader& r, bucket_options& x) {
  x.partitions = r.u32("partitions", max_partitions);
  x.rf = r.u32("rf", max_rf);
  auto ack = r.u8("ack mode");
  if (ack > static_cast<uint8_t>(ack_mode::primary)) {
    r.fail(errc::malformed_frame, fmt::format("ack mode {}", ack));
  }
  x.ack = static_cast<ack_mode>(ack);
  x.default_ttl_ms = r.signed_varint("default ttl");
  x.max_entries = r.varint("max entries");
  x.max_bytes = r.varint("max bytes");
}

void get(reader& r, record& x) {
  x.key = r.key();
  x.ver = r.ver("record version");
  auto k = r.u8("record kind");
  if (k > static_cast<uint8_t>(record_kind::dropped)) {
    r.fail(errc::malformed_frame, fmt::format("record kind {}", k));
  }
  x.kind = static_cast<record_kind>(k);
  if (x.kind == record_kind::value) {
    x.value = r.blob("value", max_value_size);
    x.expires_ms = r.signed_varint("expiry");
  }
}

void get(reader& r, op_request& x) {
  auto op = r.u8("op code");
  if (r.ok() && (op < 1 || op > static_cast<uint8_t>(op_code::cas))) {
    r.fail(errc::malformed_frame, fmt::format("op code {}", op));
  }
  x.op = static_cast<op_code>(op);
  x.bucket = r.bucket();
  x.key = r.key();
  x.value = r.blob("value", max_value_size);
  x.expires_ms = r.signed_varint("expiry");
  x.flags = r.u8("flags");
  if ((x.flags & ~op_flags_mask) != 0) {
    r.fail(errc::malformed_frame, fmt::format("flags {:#x}", x.flags));
  }
  x.delta = r.signed_varint("delta");
  x.expected = r.ver("expected version");
}

void get(reader& r, op_reply& x) {
  auto status = r.u8("status");
  if (auto code = errc_from_code(status)) {
    x.status = *code;
  } else if (r.ok()) {
    r.fail(errc::malformed_frame, fmt::format("status {}", status));
  }
  x.message = r.str("message", 4096);
  x.found = r.flag("found");
  x.value = r.blob("value", max_value_size);
  x.ver = r.ver("version");
  x.expires_ms = r.signed_varint("expiry");
  x.number = r.signed_varint("number");
}

// Smallest encodings, for bounding counts by the input left.
constexpr size_t min_record = 1 + 3 + 1;         // key, version, kind
constexpr size_t min_key_version = 1 + 3;        // key, version
constexpr size_t min_digest = 3;                 // three varints
constexpr size_t min_string = 1;                 // a length
constexpr size_t min_bucket_def = 2 + 8 + 3 + 1; // name, options, ver, flag
// op, bucket, key, value, expiry, flags, delta, expected version
constexpr size_t min_op_request = 1 + 2 + 1 + 1 + 1 + 1 + 1 + 3;
// status, message, found, value, version, expiry, number
constexpr size_t min_op_reply = 1 + 1 + 1 + 1 + 3 + 1 + 1;

std::vector<record> get_records(reader& r) {
  std::vector<record> out(r.count("records", min_record));
  for (auto& rec : out) {
    get(r, rec);
    if (!r.ok()) {
      break;
    }
  }
  return out;
}

std::vector<std::string> get_keys(reader& r, const char* what) {
  std::vector<std::string> out(r.count(what, min_string));
  for (auto& k : out) {
    k = r.key();
    if (!r.ok()) {
      break;
    }
  }
  return out;
}

void get(reader& r, entries& x) {
  x.bucket = r.bucket();
  x.partition = r.u32("partition", max_partitions - 1);
  auto why = r.u8("transfer");
  if (why > static_cast<uint8_t>(transfer::repair)) {
    r.fail(errc::malformed_frame, fmt::format("transfer {}", why));
  }
  x.why = static_cast<transfer>(why);
  x.last = r.flag("last");
  x.records = get_records(r);
}

void get(reader& r, digests& x) {
  x.bucket = r.bucket();
  x.parts.resize(r.count("digests", min_digest));
  for (auto& d : x.parts) {
    d.partition = r.u32("partition", max_partitions - 1);
    d.digest = r.varint("digest");
    d.count = r.varint("count");
    if (!r.ok()) {
      break;
    }
  }
}

void get(reader& r, versions& x) {
  x.bucket = r.bucket();
  x.partition = r.u32("partition", max_partitions - 1);
  x.keys.resize(r.count("keys", min_key_version));
  for (auto& k : x.keys) {
    k.key = r.key();
    k.ver = r.ver("key version");
    if (!r.ok()) {
      break;
    }
  }
}

void get(reader& r, versions_reply& x) {
  x.records = get_records(r);
  x.wanted = get_keys(r, "wanted keys");
}

void get(reader& r, buckets& x) {
  x.defs.resize(r.count("buckets", min_bucket_def));
  for (auto& d : x.defs) {
    d.name = r.bucket();
    get(r, d.options);
    d.ver = r.ver("bucket version");
    d.dropped = r.flag("dropped");
    if (!r.ok()) {
      break;
    }
  }
}

void get(reader& r, scan_request& x) {
  x.bucket = r.bucket();
  x.partition = r.u32("partition", max_partitions);
  x.count = r.u32("count", UINT32_MAX);
}

void get(reader& r, scan_reply& x) {
  auto status = r.u8("status");
  if (auto code = errc_from_code(status)) {
    x.status = *code;
  } else if (r.ok()) {
    r.fail(errc::malformed_frame, fmt::format("status {}", status));
  }
  x.keys = get_keys(r, "keys");
  x.next = r.u32("next partition", max_partitions);
}

void get(reader& r, replicas& x) {
  x.bucket = r.bucket();
  x.writes.resize(r.count("replicated writes", 1 + min_record));
  for (auto& w : x.writes) {
    w.partition = r.u32("partition", max_partitions - 1);
    get(r, w.rec);
    if (!r.ok()) {
      break;
    }
  }
}

void get(reader& r, op_batch& x) {
  x.ops.resize(r.count("operations", min_op_request));
  for (auto& op : x.ops) {
    get(r, op);
    if (!r.ok()) {
      break;
    }
  }
}

void get(reader& r, op_replies& x) {
  x.replies.resize(r.count("replies", min_op_reply));
  for (auto& rep : x.replies) {
    get(r, rep);
    if (!r.ok()) {
      break;
    }
  }
}

template <class T>
expected<message> decode_as(reader& r) {
  T x;
  get(r, x);
  if (r.ok() && !r.at_end()) {
    r.fail(errc::malformed_frame,
           fmt::format("{} bytes after the message", r.remaining()));
  }
  if (!r.ok()) {
    return unexpected{r.take_error()};
  }
  return message{std::move(x)};
}

} // namespace

expected<void> validate(const bucket_options& x) {
  std::string bad;
  auto add = [&](std::string_view what) {
    bad += bad.empty() ? "" : ", ";
    bad += what;
  };
  if (x.partitions < 1 || x.partitions > max_partitions) {
    add(fmt::format("partitions {} outside [1, {}]", x.partitions,
                    max_partitions));
  }
  if (x.rf < 1 || x.rf > max_rf) {
    add(fmt::format("rf {} outside [1, {}]", x.rf, max_rf));
  }
  if (x.ack != ack_mode::all && x.ack != ack_mode::primary) {
    add("ack mode");
  }
  if (x.default_ttl_ms < 0) {
    add(fmt::format("default ttl {} ms is negative", x.default_ttl_ms));
  }
  if (!bad.empty()) {
    return unexpected{error{errc::invalid_config, bad}};
  }
  return {};
}

expected<void> check_bucket_name(std::string_view name) {
  if (wire::check_identifier(name, max_bucket_name, false) != errc::none) {
    return unexpected{error{errc::invalid_identifier,
                            "a bucket name is 1 to 253 bytes of printable "
                            "UTF-8"}};
  }
  return {};
}

void encode(const message& x, bytes& out) {
  writer w{out};
  w.u8(protocol_version);
  std::visit(
    [&](const auto& msg) {
      w.u8(static_cast<uint8_t>(kind_of<std::decay_t<decltype(msg)>>()));
      put(w, msg);
    },
    x);
}

bytes encode(const message& x) {
  bytes out;
  encode(x, out);
  return out;
}

expected<message> decode(std::span<const std::byte> in) {
  reader r{in};
  auto vsn = r.u8("protocol version");
  auto k = r.u8("kind");
  if (!r.ok()) {
    return unexpected{r.take_error()};
  }
  if (vsn != protocol_version) {
    return unexpected{
      error{errc::unsupported_version,
            fmt::format("Mycel protocol version {} (this node speaks {})", vsn,
                        protocol_version)}};
  }
  switch (static_cast<kind>(k)) {
    case kind::op_request: return decode_as<op_request>(r);
    case kind::op_reply: return decode_as<op_reply>(r);
    case kind::entries: return decode_as<entries>(r);
    case kind::digests: return decode_as<digests>(r);
    case kind::versions: return decode_as<versions>(r);
    case kind::versions_reply: return decode_as<versions_reply>(r);
    case kind::buckets: return decode_as<buckets>(r);
    case kind::scan_request: return decode_as<scan_request>(r);
    case kind::scan_reply: return decode_as<scan_reply>(r);
    case kind::replicas: return decode_as<replicas>(r);
    case kind::op_batch: return decode_as<op_batch>(r);
    case kind::op_replies: return decode_as<op_replies>(r);
  }
  return unexpected{
    error{errc::unknown_frame_type, fmt::format("Mycel message kind {}", k)}};
}

} // namespace mycorrizal::cache::proto
