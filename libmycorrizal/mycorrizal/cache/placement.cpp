// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/cache/placement.hpp"

#include "mycorrizal/cache/hash.hpp"

#include <algorithm>
#include <stdexcept>

namespace mycorrizal::cache {

uint32_t partition_of(std::string_view key, uint32_t partitions) noexcept {
  if (partitions == 0) {
    return 0;
  }
  return static_cast<uint32_t>(hash64(key) % partitions);
}

uint64_t score(std::string_view member, std::string_view bucket,
               uint32_t partition) noexcept {
  // The member's hash, keyed by (bucket, partition): independent orders for
  // different partitions, so a leaving member's partitions spread over all
  // the others instead of moving to one neighbour.
  return mix64(hash64(member) ^ hash64(bucket, partition + 1));
}

std::vector<std::string> owners(const std::vector<std::string>& members,
                                std::string_view bucket, uint32_t partition,
                                size_t rf) {
  std::vector<std::pair<uint64_t, const std::string*>> scored;
  scored.reserve(members.size());
  for (const auto& m : members) {
    scored.emplace_back(score(m, bucket, partition), &m);
  }
  auto higher = [](const auto& a, const auto& b) {
    if (a.first != b.first) {
      return a.first > b.first;
    }
    return *a.second < *b.second;
  };
  std::sort(scored.begin(), scored.end(), higher);
  std::vector<std::string> out;
  for (const auto& [s, name] : scored) {
    if (out.size() == rf) {
      break;
    }
    if (std::find(out.begin(), out.end(), *name) == out.end()) {
      out.push_back(*name);
    }
  }
  return out;
}

placement::placement(std::string bucket, uint32_t partitions, size_t rf,
                     std::vector<std::string> members)
    : bucket_(std::move(bucket)), rf_(rf), members_(std::move(members)) {
  std::sort(members_.begin(), members_.end());
  members_.erase(std::unique(members_.begin(), members_.end()), members_.end());
  owners_.reserve(partitions);
  for (uint32_t p = 0; p < partitions; ++p) {
    owners_.push_back(owners(members_, bucket_, p, rf_));
  }
}

const std::string& placement::primary_of(uint32_t partition) const {
  const auto& o = owners_.at(partition);
  if (o.empty()) {
    throw std::logic_error("placement: no member owns anything");
  }
  return o.front();
}

std::vector<uint32_t> placement::owned_by(std::string_view member) const {
  std::vector<uint32_t> out;
  for (uint32_t p = 0; p < owners_.size(); ++p) {
    const auto& o = owners_[p];
    if (std::find(o.begin(), o.end(), member) != o.end()) {
      out.push_back(p);
    }
  }
  return out;
}

std::vector<uint32_t> placement::changed(const placement& other) const {
  std::vector<uint32_t> out;
  auto n = std::min(owners_.size(), other.owners_.size());
  for (uint32_t p = 0; p < n; ++p) {
    if (owners_[p] != other.owners_[p]) {
      out.push_back(p);
    }
  }
  return out;
}

} // namespace mycorrizal::cache
