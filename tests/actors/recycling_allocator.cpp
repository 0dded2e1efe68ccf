// SPDX-License-Identifier: Apache-2.0
// Tests for mycorrizal/runtime/recycling_allocator.hpp: blocks kept per
// thread, reused for the next object, bounded, and freed when the thread
// ends (LeakSanitizer checks that last part in the ASan tier).
#include "mycorrizal/runtime/recycling_allocator.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using mycorrizal::runtime::recycling_allocator;

struct thing {
  std::string name;
  int64_t n = 0;
};

/// A type of its own per test: the blocks are kept per type.
template <int Tag>
struct tagged : thing {
  using thing::thing;
};

TEST(recycling_allocator, a_freed_block_serves_the_next_object) {
  using t = tagged<1>;
  auto a = std::allocate_shared<t>(recycling_allocator<t>{});
  a->name = "a long name that does not fit the short string buffer";
  const void* first = a.get();
  a.reset();
  auto b = std::allocate_shared<t>(recycling_allocator<t>{});
  EXPECT_EQ(b.get(), first) << "the freed block was not reused";
  EXPECT_TRUE(b->name.empty()) << "the new object was not constructed anew";
  EXPECT_EQ(b->n, 0);
}

TEST(recycling_allocator, keeps_at_most_keep_blocks) {
  using t = tagged<2>;
  using alloc = recycling_allocator<t, 4>;
  std::vector<std::shared_ptr<t>> live;
  for (int i = 0; i < 10; ++i) {
    live.push_back(std::allocate_shared<t>(alloc{}));
  }
  std::set<const void*> freed;
  for (auto& x : live) {
    freed.insert(x.get());
  }
  live.clear(); // 4 kept, 6 back to operator delete
  std::vector<std::shared_ptr<t>> again;
  size_t reused = 0;
  for (int i = 0; i < 10; ++i) {
    again.push_back(std::allocate_shared<t>(alloc{}));
    // The kept blocks come first; after them, new memory (which may or
    // may not be at a freed address).
    if (i < 4) {
      reused += freed.count(again.back().get());
    }
  }
  EXPECT_EQ(reused, 4u) << "the first four objects did not take the kept "
                           "blocks";
}

TEST(recycling_allocator, blocks_freed_on_another_thread_stay_usable) {
  using t = tagged<3>;
  std::vector<std::shared_ptr<t>> made;
  for (int i = 0; i < 100; ++i) {
    made.push_back(std::allocate_shared<t>(recycling_allocator<t>{}));
    made.back()->n = i;
  }
  // Freed there (kept by that thread, then freed when it ends), made
  // again there: no block is shared by two live objects.
  std::thread other{[&made] {
    made.clear();
    std::vector<std::shared_ptr<t>> mine;
    std::set<const void*> seen;
    for (int i = 0; i < 200; ++i) {
      mine.push_back(std::allocate_shared<t>(recycling_allocator<t>{}));
      EXPECT_TRUE(seen.insert(mine.back().get()).second)
        << "a block was handed out twice";
    }
  }};
  other.join();
  auto here = std::allocate_shared<t>(recycling_allocator<t>{});
  here->name = "still works";
  EXPECT_EQ(here->name, "still works");
}

TEST(recycling_allocator, arrays_bypass_the_kept_blocks) {
  recycling_allocator<int64_t> alloc;
  auto* p = alloc.allocate(8);
  for (int i = 0; i < 8; ++i) {
    p[i] = i;
  }
  alloc.deallocate(p, 8);
  auto* q = alloc.allocate(1);
  *q = 42;
  EXPECT_EQ(*q, 42);
  alloc.deallocate(q, 1);
}

} // namespace
