// Turning an HTTP response into an operation's result. Kept apart from the Client so that the exact
// code the Client runs on every response can also be fed raw bytes by the fuzz targets.
#pragma once

#include <perplexity/detail/error_body.hpp>
#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>
#include <perplexity/json.hpp>

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

/// A request as it goes on the wire. Requests are written as one string rather than through Beast's
/// serializer: the header lines are the same for every request of a Client, so they are rendered once
/// (see `render_request`), and a poll then costs one allocation and one write instead of an allocation
/// per field and a buffer sequence per line.
struct HttpRequest {
    boost::beast::http::verb method = boost::beast::http::verb::get;
    /// The exact bytes sent: request line, headers, blank line, body.
    std::string wire{};
    std::size_t target_length = 0;

    std::string_view method_name() const {
        const auto name = boost::beast::http::to_string(method);
        return {name.data(), name.size()};
    }
    /// The path and query, as written on the request line.
    std::string_view target() const {
        return std::string_view(wire).substr(method_name().size() + 1, target_length);
    }
};

/// Renders a request. `common_headers` are complete header lines ("Name: value\r\n"), already checked
/// to hold no line breaks inside values; `target` must be a valid, percent-encoded origin-form target.
/// A body is sent as JSON with its length.
inline HttpRequest render_request(boost::beast::http::verb method, std::string_view target,
                                  std::string_view common_headers, std::string_view json_body = {}) {
    HttpRequest request{.method = method, .target_length = target.size()};
    const std::string_view name = request.method_name();
    std::string& wire = request.wire;
    wire.reserve(name.size() + target.size() + common_headers.size() + json_body.size() + 64);
    wire.append(name).append(" ").append(target).append(" HTTP/1.1\r\n").append(common_headers);
    if (method == boost::beast::http::verb::post || !json_body.empty()) {
        wire.append("Content-Type: application/json\r\nContent-Length: ")
            .append(std::to_string(json_body.size()))
            .append("\r\n");
    }
    wire.append("\r\n").append(json_body);
    return request;
}
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

inline std::string describe_status(int status) {
    switch (status) {
        case 400:
            return "the API rejected the request as malformed";
        case 401:
            return "the API refused the API key; check ClientOptions::api_key (PERPLEXITY_API_KEY)";
        case 403:
            return "the API key is not allowed to do this";
        case 404:
            return "not found: the job id is unknown or has expired, or the path prefix is wrong";
        case 422:
            return "the API rejected the request's parameters";
        case 429:
            return "the API's rate limit was exceeded; slow down before retrying";
        default:
            break;
    }
    if (status >= 500) {
        return "the API failed with a server error; a later retry may succeed";
    }
    return "the API answered with an unexpected HTTP status";
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
    for (std::string* field :
         {&error.message, &error.api_type, &error.api_message, &error.body_excerpt, &error.json_path}) {
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
    Error error{.kind = status == 429 ? ErrorKind::rate_limited : ErrorKind::http_status,
                .message = describe_status(status),
                .http_status = status,
                .job_id = job_id};
    std::string body = std::move(response.body());
    redact(body, api_key);
    read_error_body(body, error);
    redact(error, api_key);
    return unexpected(std::move(error));
}

}  // namespace perplexity::detail
