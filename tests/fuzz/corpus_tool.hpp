// SPDX-License-Identifier: Apache-2.0
// What the seed-corpus writers (make_*_corpus) share: writing the seeds
// into a directory, or checking that the directory holds exactly them.
#pragma once

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace mycorrizal::fuzz {

struct seed {
  std::string name;
  std::vector<std::byte> bytes;
};

inline bool read_file(const std::string& path, std::vector<std::byte>& out) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    return false;
  }
  std::vector<char> text{std::istreambuf_iterator<char>{in}, {}};
  out.resize(text.size());
  if (!text.empty()) {
    std::memcpy(out.data(), text.data(), text.size());
  }
  return true;
}

inline bool write_file(const std::string& path,
                       const std::vector<std::byte>& bytes) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

/// `tool <dir>` writes one file per seed into `<dir>`; `tool --check <dir>`
/// returns non-zero if a file in `<dir>` differs from its seed.
inline int corpus_main(int argc, char** argv, const std::vector<seed>& all) {
  bool check = argc == 3 && std::strcmp(argv[1], "--check") == 0;
  if (argc != 2 && !check) {
    std::fprintf(stderr, "usage: %s [--check] <corpus-dir>\n", argv[0]);
    return 2;
  }
  std::string dir = argv[argc - 1];
  int failures = 0;
  for (auto& s : all) {
    auto path = dir + "/" + s.name;
    if (check) {
      std::vector<std::byte> existing;
      if (!read_file(path, existing) || existing != s.bytes) {
        std::fprintf(stderr, "%s: missing or stale (regenerate with: %s %s)\n",
                     path.c_str(), argv[0], dir.c_str());
        ++failures;
      }
    } else if (!write_file(path, s.bytes)) {
      std::fprintf(stderr, "%s: cannot write\n", path.c_str());
      ++failures;
    } else {
      std::printf("%s (%zu bytes)\n", path.c_str(), s.bytes.size());
    }
  }
  return failures == 0 ? 0 : 1;
}

} // namespace mycorrizal::fuzz
