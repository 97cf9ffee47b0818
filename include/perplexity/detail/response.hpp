// Turning an HTTP response into an operation's result, and into the facts the request machine decides
// on. Kept apart from the Client so that the exact code the Client runs on every response can also be
// fed raw bytes by the fuzz targets.
#pragma once

#include <perplexity/detail/error_body.hpp>
#include <perplexity/detail/error_text.hpp>
#include <perplexity/detail/json_parse.hpp>
#include <perplexity/detail/request_machine.hpp>
#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>
#include <perplexity/json.hpp>
#include <perplexity/retry.hpp>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace perplexity::detail {

using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

struct ExchangeLimits {
    std::chrono::milliseconds timeout{};
    std::size_t max_header{};
    std::size_t max_body{};
};

/// The limits a response is read under; the fuzz targets parse with exactly these settings too.
template <class Parser>
void apply_limits(Parser& parser, const ExchangeLimits& limits) {
    parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(limits.max_header, UINT32_MAX)));
    parser.body_limit(limits.max_body);
}

/// What the request machine needs of an answer: its status and, for an error status, the server's
/// retry hints (a date in retry-after is measured against `now`). A success needs no hints, and most
/// answers are successes: their headers are not searched.
inline Reply reply_of(const HttpResponse& response, std::chrono::system_clock::time_point now) {
    const int status = static_cast<int>(response.result_int());
    if (status >= 200 && status < 300) {
        return Reply{.status = status};
    }
    return Reply{.status = status,
                 .retry_hint = parse_retry_hint(response["retry-after-ms"], response["retry-after"], now),
                 .should_retry = parse_should_retry(response["x-should-retry"])};
}

/// Replaces every occurrence of `secret` in `text`.
inline void redact(std::string& text, std::string_view secret) {
    if (secret.empty()) {
        return;
    }
    constexpr std::string_view mark = "[redacted]";
    // The search resumes after the mark, which may itself contain a (very short) secret.
    for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + mark.size())) {
        text.replace(at, secret.size(), mark);
    }
}

/// Removes the API key from everything in an Error that came from the server. The raw body is
/// redacted before it is read too, so a cut excerpt cannot keep part of the key; this second pass
/// catches a key that only appears once JSON escapes are decoded.
inline void redact(Error& error, std::string_view secret) {
    for (std::string* field : {&error.message, &error.api_type, &error.api_message, &error.api_param,
                               &error.body_excerpt, &error.json_path}) {
        redact(*field, secret);
    }
    if (error.job_id) {
        redact(*error.job_id, secret);
    }
}

/// The operation's result from a response: the decoded body on 2xx, an Error otherwise. A misbehaving
/// server or proxy that echoes request headers must not make `api_key` show up in an Error, so server
/// text is redacted on the way in.
template <class T>
expected<T, Error> read_response(HttpResponse& response, std::string_view what,
                                 const std::optional<std::string>& job_id, std::string_view api_key) {
    const int status = static_cast<int>(response.result_int());
    if (status >= 200 && status < 300) {
        auto decoded = parse_body<T>(response.body(), what);
        if (!decoded) {
            if (job_id && !decoded.error().job_id) {
                decoded.error().job_id = job_id;
            }
            redact(decoded.error(), api_key);
        }
        return decoded;
    }
    Error error = refused_with_status(status);
    error.job_id = job_id;
    std::string body = std::move(response.body());
    redact(body, api_key);
    read_error_body(body, error);
    redact(error, api_key);
    return unexpected(std::move(error));
}

}  // namespace perplexity::detail
