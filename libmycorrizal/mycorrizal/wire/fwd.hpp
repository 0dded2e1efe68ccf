// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <span>

namespace mycorrizal::wire {

using bytes_view = std::span<const std::byte>;

struct limits;
struct stream_init;
struct data;
struct request;
struct response;
struct stream_error;
struct hello;
struct apps;
class decoder;

} // namespace mycorrizal::wire
