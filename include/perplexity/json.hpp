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

#include <perplexity/chat.hpp>
#include <perplexity/detail/json_encoders.hpp>
#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>
#include <perplexity/job.hpp>
#include <perplexity/response.hpp>
#include <perplexity/response_request.hpp>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace perplexity {

/// Reads a Job (the body of create and get). Errors are ErrorKind::decode: with `json_path` "$" for
/// text that is not JSON (or nests deeper than 64 levels), otherwise the path of the offending member,
/// and `job_id` when the body named its job.
expected<Job, Error> parse_job(std::string_view body);

/// Reads a page of the job list (`{"requests": [...], "next_token": ...}`); errors as for parse_job.
expected<JobPage, Error> parse_job_page(std::string_view body);

/// Reads a chat completion on its own (e.g. one stored from an earlier run); errors as for parse_job.
/// The result's `raw` holds the body's object.
expected<ChatCompletion, Error> parse_chat_completion(std::string_view body);

/// The body of a create: `{"request": {...}, "idempotency_key": "..."}`, the key only when given. Does
/// not check the request; Client::create does.
boost::json::object create_request_body(const ChatRequest& request,
                                        const std::optional<std::string>& idempotency_key = std::nullopt);

/// Reads an Agent API Response (the body of `create_response` and `get_response`). Output items of
/// unknown types are kept as OtherOutput; an unknown status as ResponseStatus::unknown with its text.
/// Errors as for parse_job (`job_id` is the response's id when the body named it).
expected<Response, Error> parse_response(std::string_view body);

/// Reads the answer of an Agent API cancel (`{"response_id": ..., "status": "cancelling"}`).
expected<CancelAcknowledgement, Error> parse_cancel_acknowledgement(std::string_view body);

/// The body of an Agent API create: the members `request` sets, with `"background": true`. Does not
/// check the request; Client::create_response does.
boost::json::object create_response_body(const ResponseRequest& request);

/// Any model type as compact JSON text. A ChatCompletion is written from its `raw` object with the
/// typed members laid over it, so members this library does not model survive.
template <class T>
std::string to_json_string(const T& value) {
    return boost::json::serialize(boost::json::value_from(value));
}

}  // namespace perplexity

#ifndef PERPLEXITY_ASYNC_SEPARATE_COMPILATION
#include <perplexity/detail/json.ipp>
#endif
