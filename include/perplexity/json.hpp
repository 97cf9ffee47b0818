/// @file
/// Reading and writing the API's JSON bodies.
///
/// `parse_job`, `parse_job_page` and `parse_chat_completion` turn a body into a typed value or a decode
/// Error naming the JSON path of the problem. Decoding ignores unknown members, treats `null` like
/// absence for optional ones, and rejects a missing or mistyped required member. The body needs to live
/// only during the call; the result owns its data. `boost::json::value_from(x)` writes any model type
/// back, leaving out empty optional members but for a job's lifecycle members (`started_at`,
/// `completed_at`, `failed_at`, `error_message`, `response`) and a message's `content`, which are written
/// as null as the API writes them; `create_request_body` writes what a create sends. All of these are free
/// of shared state and safe from any thread.
#pragma once

#include <perplexity/detail/json_mapping.hpp>
#include <perplexity/detail/response_mapping.hpp>
#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <optional>
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

/// Reads a Job (the body of create and get). Errors are ErrorKind::decode: with `json_path` "$" for
/// text that is not JSON (or nests deeper than 64 levels), otherwise the path of the offending member,
/// and `job_id` when the body named its job.
inline expected<Job, Error> parse_job(std::string_view body) {
    return detail::parse_body<Job>(body, "job");
}

/// Reads a page of the job list (`{"requests": [...], "next_token": ...}`); errors as for parse_job.
inline expected<JobPage, Error> parse_job_page(std::string_view body) {
    return detail::parse_body<JobPage>(body, "job list");
}

/// Reads a chat completion on its own (e.g. one stored from an earlier run); errors as for parse_job.
/// The result's `raw` holds the body's object.
inline expected<ChatCompletion, Error> parse_chat_completion(std::string_view body) {
    return detail::parse_body<ChatCompletion>(body, "chat completion");
}

/// The body of a create: `{"request": {...}, "idempotency_key": "..."}`, the key only when given. Does
/// not check the request; Client::create does.
inline boost::json::object create_request_body(
    const ChatRequest& request, const std::optional<std::string>& idempotency_key = std::nullopt) {
    boost::json::object body;
    body["request"] = boost::json::value_from(request);
    if (idempotency_key) {
        body["idempotency_key"] = *idempotency_key;
    }
    return body;
}

/// Reads an Agent API Response (the body of `create_response` and `get_response`). Output items of
/// unknown types are kept as OtherOutput; an unknown status as ResponseStatus::unknown with its text.
/// Errors as for parse_job (`job_id` is the response's id when the body named it).
inline expected<Response, Error> parse_response(std::string_view body) {
    return detail::parse_body<Response>(body, "response");
}

/// Reads the answer of an Agent API cancel (`{"response_id": ..., "status": "cancelling"}`).
inline expected<CancelAcknowledgement, Error> parse_cancel_acknowledgement(std::string_view body) {
    return detail::parse_body<CancelAcknowledgement>(body, "cancel acknowledgement");
}

/// The body of an Agent API create: the members `request` sets, with `"background": true`. Does not
/// check the request; Client::create_response does.
inline boost::json::object create_response_body(const ResponseRequest& request) {
    boost::json::value body = boost::json::value_from(request);
    boost::json::object& object = body.as_object();
    object["background"] = true;
    return std::move(object);
}

/// Any model type as compact JSON text. A ChatCompletion is written from its `raw` object with the
/// typed members laid over it, so members this library does not model survive.
template <class T>
std::string to_json_string(const T& value) {
    return boost::json::serialize(boost::json::value_from(value));
}

}  // namespace perplexity
