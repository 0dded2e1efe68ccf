// SPDX-License-Identifier: Apache-2.0
// An allocator that keeps freed blocks per thread for the next allocation
// of the same type: for small objects a hot path makes and ends by the
// hundred thousand a second (a pipelined command's state), where glibc's
// own per-thread cache overflows into its slow paths.
#pragma once

#include <cstddef>
#include <new>

namespace mycorrizal::runtime {

namespace detail {

/// The blocks kept by one thread for one type. Trivially destructible, so
/// that it can be asked after the thread's other objects were destroyed
/// (`gone`: blocks go back to `operator delete` from then on).
struct block_list {
  void* head = nullptr;
  size_t count = 0;
  bool armed = false;
  bool gone = false;
};

/// Frees the blocks of `list` when its thread ends.
struct block_list_cleanup {
  block_list* list;
  std::align_val_t align;

  block_list_cleanup(block_list* l, std::align_val_t a) noexcept
      : list(l), align(a) {
    // nop
  }

  block_list_cleanup(const block_list_cleanup&) = delete;
  block_list_cleanup& operator=(const block_list_cleanup&) = delete;

  ~block_list_cleanup() {
    while (list->head != nullptr) {
      void* p = list->head;
      list->head = *static_cast<void**>(p);
      ::operator delete(p, align);
    }
    list->count = 0;
    list->gone = true;
  }
};

} // namespace detail

/// Allocates one object of `T` at a time from blocks kept by the calling
/// thread (up to `Keep` of them), else by `operator new`. A block freed
/// on another thread joins that thread's blocks: correct, merely shared
/// differently. Use with `std::allocate_shared` for objects a
/// `shared_ptr` holds (it rebinds to its control block's type).
template <class T, size_t Keep = 1024>
class recycling_allocator {
public:
  using value_type = T;

  template <class U>
  struct rebind {
    using other = recycling_allocator<U, Keep>;
  };

  recycling_allocator() noexcept = default;

  template <class U>
  recycling_allocator(const recycling_allocator<U, Keep>&) noexcept {
    // nop
  }

  T* allocate(size_t n) {
    if (n == 1) {
      auto& l = list();
      if (l.head != nullptr) {
        void* p = l.head;
        l.head = *static_cast<void**>(p);
        --l.count;
        return static_cast<T*>(p);
      }
    }
    return static_cast<T*>(::operator new(n * sizeof(T), align));
  }

  void deallocate(T* p, size_t n) noexcept {
    if (n == 1) {
      auto& l = list();
      if (!l.gone && l.count < Keep) {
        if (!l.armed) {
          l.armed = true;
          thread_local detail::block_list_cleanup cleanup{&l, align};
        }
        *reinterpret_cast<void**>(p) = l.head;
        l.head = p;
        ++l.count;
        return;
      }
    }
    ::operator delete(p, align);
  }

  template <class U>
  friend bool operator==(const recycling_allocator&,
                         const recycling_allocator<U, Keep>&) noexcept {
    return true;
  }

private:
  static_assert(sizeof(T) >= sizeof(void*),
                "a kept block holds the pointer to the next one");

  static constexpr std::align_val_t align{
    alignof(T) > alignof(void*) ? alignof(T) : alignof(void*)};

  static detail::block_list& list() noexcept {
    thread_local detail::block_list l;
    return l;
  }
};

} // namespace mycorrizal::runtime
