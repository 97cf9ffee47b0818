// Turning a body into a model type: what parse_job and its kin do, for any type with a JsonDecoder.
#pragma once

#include <perplexity/detail/json_mapping.hpp>
#include <perplexity/detail/response_mapping.hpp>
#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace perplexity {

namespace detail {

/// Decodes T from an already parsed value, turning a DecodeFailure into an Error.
template <class T>
expected<T, Error> decode_value(boost::json::value& value, std::string_view what) {
    try {
        return JsonDecoder<T>::decode(value, JsonPath{});
    } catch (DecodeFailure& failure) {
        Error error{.kind = ErrorKind::decode,
                    .message = std::string("the ") + std::string(what) +
                               " body does not match the API contract: " + std::move(failure.problem),
                    .json_path = std::move(failure.path)};
        // A body that named its job keeps that id in the error, so the job is never lost.
        if (value.is_object()) {
            if (const auto* id = value.get_object().if_contains("id"); id && id->is_string()) {
                error.job_id = std::string(id->get_string());
            }
        }
        return unexpected(std::move(error));
    }
}

template <class T>
expected<T, Error> parse_body(std::string_view body, std::string_view what) {
    // The parsed tree is built in one arena instead of with an allocation for every key, string and
    // container (which was most of the allocations of a poll). A typical job body fits an arena on the
    // stack, which is gone once the members are copied into T. A larger body is usually a completed job,
    // whose answer keeps the whole object as its `raw`: its arena is reference-counted, so `raw` keeps it
    // alive instead of being copied out of it member by member.
    constexpr std::size_t stack_arena_size = 4096;
    constexpr std::size_t largest_body_on_stack = 1024;
    unsigned char arena[stack_arena_size];
    boost::json::monotonic_resource stack_resource(arena, sizeof arena);
    const boost::json::storage_ptr storage =
        body.size() <= largest_body_on_stack
            ? boost::json::storage_ptr(&stack_resource)
            : boost::json::make_shared_resource<boost::json::monotonic_resource>();
    boost::system::error_code ec;
    boost::json::parse_options options;
    options.max_depth = 64;
    boost::json::value value = boost::json::parse(body, ec, storage, options);
    if (ec) {
        return unexpected(Error{.kind = ErrorKind::decode,
                                .message = std::string("the ") + std::string(what) +
                                           " body is not valid JSON (" + ec.message() + ")",
                                .json_path = "$",
                                .cause = ec});
    }
    return decode_value<T>(value, what);
}

}  // namespace detail

}  // namespace perplexity
