// SPDX-License-Identifier: Apache-2.0
// The Redis protocol codec: requests in (request.hpp), replies out
// (reply.hpp). Pure: no sockets, no clock, no CAF; a RESP server drives one
// request_parser and one reply_writer per connection.
#pragma once

#include "mycorrizal/resp/reply.hpp"
#include "mycorrizal/resp/request.hpp"
