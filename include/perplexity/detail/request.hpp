// The requests of the API as they go on the wire, each rendered in one piece.
#pragma once

#include <perplexity/chat.hpp>
#include <perplexity/detail/error_text.hpp>
#include <perplexity/detail/url.hpp>
#include <perplexity/error.hpp>
#include <perplexity/response_request.hpp>

#include <boost/beast/http/verb.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

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

/// Why `request` (with `idempotency_key`) cannot be sent as a create, if it cannot: caught here, the
/// API's 400 would cost a round trip and say less.
inline std::optional<Error> check_create(const ChatRequest& request,
                                         const std::optional<std::string>& idempotency_key) {
    if (request.model.empty()) {
        return invalid_argument("ChatRequest::model is empty");
    }
    if (request.messages.empty()) {
        return invalid_argument("ChatRequest::messages is empty; a job needs at least one message");
    }
    for (std::size_t i = 0; i < request.messages.size(); ++i) {
        if (request.messages[i].role.empty()) {
            return invalid_argument("ChatRequest::messages[" + std::to_string(i) + "].role is empty");
        }
    }
    if (request.max_tokens && *request.max_tokens <= 0) {
        return invalid_argument("ChatRequest::max_tokens must be greater than 0");
    }
    if (idempotency_key && idempotency_key->empty()) {
        return invalid_argument("the idempotency key is empty; pass std::nullopt for none");
    }
    return std::nullopt;
}

/// Why the id of a `noun` ("job" or "response") cannot be asked about, if it cannot.
inline std::optional<Error> check_id(const std::string& id, std::string_view noun) {
    if (id.empty()) {
        return invalid_argument("the " + std::string(noun) + " id is empty");
    }
    return std::nullopt;
}

/// Why a list page of `limit` jobs cannot be asked for, if it cannot.
inline std::optional<Error> check_list(std::optional<std::size_t> limit) {
    if (limit && *limit == 0) {
        return invalid_argument("the list limit must be at least 1");
    }
    return std::nullopt;
}

/// Why `request` cannot be sent as an Agent API create, if it cannot. The API's 400 would say it too,
/// but a round trip later; what is caught here is what a typed request can get wrong.
inline std::optional<Error> check_response_create(const ResponseRequest& request) {
    if (const auto* text = std::get_if<std::string>(&request.input); text != nullptr && text->empty()) {
        return invalid_argument("ResponseRequest::input is empty");
    }
    if (const auto* items = std::get_if<std::vector<InputItem>>(&request.input);
        items != nullptr && items->empty()) {
        return invalid_argument("ResponseRequest::input has no items");
    }
    const int choices =
        int(request.model.has_value()) + int(!request.models.empty()) + int(request.preset.has_value());
    if (choices == 0) {
        return invalid_argument(
            "ResponseRequest needs one of model, models and preset (e.g. preset = \"medium\")");
    }
    if (request.models.size() > 5) {
        return invalid_argument("ResponseRequest::models lists more than 5 models");
    }
    if ((request.model && request.model->empty()) || (request.preset && request.preset->empty())) {
        return invalid_argument("ResponseRequest::model or preset is set but empty");
    }
    if (request.max_steps && (*request.max_steps < 1 || *request.max_steps > 100)) {
        return invalid_argument("ResponseRequest::max_steps must be between 1 and 100");
    }
    if (request.max_output_tokens && *request.max_output_tokens <= 0) {
        return invalid_argument("ResponseRequest::max_output_tokens must be greater than 0");
    }
    if (request.store == false) {
        return invalid_argument(
            "ResponseRequest::store is false, which hides a background response from retrieve: it could "
            "never be polled. Leave store unset");
    }
    return std::nullopt;
}

/// The requests of one Client: the collection's target and the header lines every request carries
/// (which hold the API key) are fixed when the Client is configured.
/// The body of a Sonar create, `{"request": <request_text>, "idempotency_key": "<key>"}` (without the key
/// when there is none), from the request already written as JSON: what `create_request_body` writes, from
/// the text a ledger keeps, with no second parse.
inline std::string create_body_from_text(const std::string& request_text,
                                         const std::optional<std::string>& key) {
    if (!key) {
        return "{\"request\":" + request_text + "}";
    }
    return "{\"request\":" + request_text +
           ",\"idempotency_key\":" + boost::json::serialize(boost::json::string(*key)) + "}";
}

class RequestRenderer {
  public:
    RequestRenderer() = default;
    RequestRenderer(std::string collection_target, std::string responses_target, std::string common_headers)
        : collection_target_(std::move(collection_target)),
          responses_target_(std::move(responses_target)),
          common_headers_(std::move(common_headers)) {}

    HttpRequest create(std::string_view json_body) const {
        return render_request(boost::beast::http::verb::post, collection_target_, common_headers_, json_body);
    }

    /// A poll: rendered in place, with one allocation, since every wait sends one after another.
    HttpRequest get(std::string_view job_id) const { return item_request(collection_target_, job_id); }

    /// An Agent API create (`POST /v1/responses`).
    HttpRequest create_response(std::string_view json_body) const {
        return render_request(boost::beast::http::verb::post, responses_target_, common_headers_, json_body);
    }

    /// An Agent API retrieve, the poll of a response.
    HttpRequest get_response(std::string_view response_id) const {
        return item_request(responses_target_, response_id);
    }

    /// An Agent API cancel (`POST /v1/responses/{id}/cancel`, no body).
    HttpRequest cancel_response(std::string_view response_id) const {
        std::string target = responses_target_ + '/';
        append_percent_encoded(target, response_id);
        target.append("/cancel");
        return render_request(boost::beast::http::verb::post, target, common_headers_);
    }

    HttpRequest list(std::optional<std::size_t> limit, const std::optional<std::string>& next_token) const {
        std::string target = collection_target_;
        char separator = '?';
        if (limit) {
            target.append(1, separator).append("limit=").append(std::to_string(*limit));
            separator = '&';
        }
        if (next_token) {
            target.append(1, separator).append("next_token=").append(percent_encode(*next_token));
        }
        return render_request(boost::beast::http::verb::get, target, common_headers_);
    }

  private:
    /// `GET <collection>/<id>`, rendered in place.
    HttpRequest item_request(std::string_view collection, std::string_view id) const {
        HttpRequest request{.method = boost::beast::http::verb::get};
        std::string& wire = request.wire;
        constexpr std::string_view method = "GET ";
        wire.reserve(method.size() + collection.size() + 1 + 3 * id.size() + 11 + common_headers_.size() + 2);
        wire.append(method).append(collection).append(1, '/');
        append_percent_encoded(wire, id);
        request.target_length = wire.size() - method.size();
        wire.append(" HTTP/1.1\r\n").append(common_headers_).append("\r\n");
        return request;
    }

    std::string collection_target_;
    std::string responses_target_;
    /// Host, Authorization, Accept and User-Agent lines. Holds the key.
    std::string common_headers_;
};

}  // namespace perplexity::detail
