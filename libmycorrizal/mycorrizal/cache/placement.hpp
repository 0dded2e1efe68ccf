// SPDX-License-Identifier: Apache-2.0
// Where a bucket's keys live: partitions, and rendezvous (HRW) hashing of
// each partition over the storage members.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mycorrizal::cache {

/// The default number of partitions of a bucket (Hazelcast's and Olric's).
inline constexpr uint32_t default_partitions = 271;

/// The partition of `key` in a bucket of `partitions` partitions.
uint32_t partition_of(std::string_view key, uint32_t partitions) noexcept;

/// The rendezvous score of `member` for (`bucket`, `partition`): the
/// owners of a partition are the members with the highest scores.
uint64_t score(std::string_view member, std::string_view bucket,
               uint32_t partition) noexcept;

/// The owners of one partition: the `rf` storage members with the highest
/// scores, highest first; the first is the primary. Fewer when fewer
/// members exist. Ties (equal scores) go to the smaller name. `members`
/// need not be sorted; each name counts once.
std::vector<std::string> owners(const std::vector<std::string>& members,
                                std::string_view bucket, uint32_t partition,
                                size_t rf);

/// The owners of every partition of a bucket (index: partition).
class placement {
public:
  placement(std::string bucket, uint32_t partitions, size_t rf,
            std::vector<std::string> members);

  const std::vector<std::string>& owners_of(uint32_t partition) const {
    return owners_.at(partition);
  }

  const std::string& primary_of(uint32_t partition) const;

  uint32_t partitions() const noexcept {
    return static_cast<uint32_t>(owners_.size());
  }

  const std::vector<std::string>& members() const noexcept {
    return members_;
  }

  /// Partitions `member` owns (as primary or replica), ascending.
  std::vector<uint32_t> owned_by(std::string_view member) const;

  /// Partitions whose owner set differs from `other`'s (same bucket and
  /// partition count), ascending.
  std::vector<uint32_t> changed(const placement& other) const;

private:
  std::string bucket_;
  size_t rf_;
  std::vector<std::string> members_;
  std::vector<std::vector<std::string>> owners_;
};

} // namespace mycorrizal::cache
