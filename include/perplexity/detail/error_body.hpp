// Reading the API's error bodies in the three shapes seen in the wild (see api-contract.md, "Errors").
#pragma once

#include <perplexity/error.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace perplexity::detail {

inline constexpr std::size_t max_server_text = 512;

/// Server text made safe to print on one line: control characters and bytes outside ASCII become
/// spaces or '?', runs of white space fold to one, and it is cut to `limit` bytes.
inline std::string printable_excerpt(std::string_view text, std::size_t limit = max_server_text) {
    std::string out;
    out.reserve(std::min(text.size(), limit));
    bool last_was_space = true;
    for (const char c : text) {
        if (out.size() >= limit) {
            out += "...";
            break;
        }
        const auto byte = static_cast<unsigned char>(c);
        if (byte <= 0x20 || byte == 0x7F) {
            if (!last_was_space) {
                out += ' ';
            }
            last_was_space = true;
            continue;
        }
        out += byte < 0x80 ? c : '?';
        last_was_space = false;
    }
    while (!out.empty() && out.back() == ' ') {
        out.pop_back();
    }
    return out;
}

inline std::string text_of(const boost::json::value& value) {
    return value.is_string() ? std::string(value.get_string()) : boost::json::serialize(value);
}

/// `{"detail": [{"loc": ["body", "request", "messages"], "msg": "Field required", "type": "missing"}]}`
/// becomes "body.request.messages: Field required (missing)", one entry per problem, joined by "; ".
inline std::string describe_validation_details(const boost::json::array& details) {
    std::string out;
    for (const auto& item : details) {
        if (!out.empty()) {
            out += "; ";
        }
        if (!item.is_object()) {
            out += text_of(item);
            continue;
        }
        const auto& entry = item.get_object();
        if (const auto* loc = entry.if_contains("loc"); loc && loc->is_array()) {
            std::string where;
            for (const auto& part : loc->get_array()) {
                where += where.empty() ? "" : ".";
                where += text_of(part);
            }
            out += where + ": ";
        }
        if (const auto* msg = entry.if_contains("msg")) {
            out += text_of(*msg);
        }
        if (const auto* type = entry.if_contains("type"); type && type->is_string()) {
            out += " (" + std::string(type->get_string()) + ")";
        }
    }
    return out;
}

/// The text inside <title>, for HTML error pages from the edge.
inline std::string_view html_title(std::string_view body) {
    const auto open = body.find("<title>");
    if (open == std::string_view::npos) {
        return {};
    }
    const auto start = open + 7;
    const auto close = body.find("</title>", start);
    return close == std::string_view::npos ? std::string_view{} : body.substr(start, close - start);
}

/// Fills `api_type` and `api_message` from a recognised error envelope, or `body_excerpt` otherwise.
inline void read_error_body(std::string_view body, Error& error) {
    boost::system::error_code ec;
    const boost::json::value value = boost::json::parse(body, ec);
    if (!ec && value.is_object()) {
        const auto& object = value.get_object();
        if (const auto* envelope = object.if_contains("error")) {
            if (envelope->is_object()) {
                const auto& fields = envelope->get_object();
                if (const auto* type = fields.if_contains("type"); type && !type->is_null()) {
                    error.api_type = printable_excerpt(text_of(*type));
                }
                if (const auto* message = fields.if_contains("message"); message && !message->is_null()) {
                    error.api_message = printable_excerpt(text_of(*message));
                }
                if (const auto* param = fields.if_contains("param"); param && !param->is_null()) {
                    error.api_param = printable_excerpt(text_of(*param));
                }
            } else if (!envelope->is_null()) {
                error.api_message = printable_excerpt(text_of(*envelope));
            }
            return;
        }
        if (const auto* detail = object.if_contains("detail")) {
            error.api_type = "validation_error";
            error.api_message = printable_excerpt(
                detail->is_array() ? describe_validation_details(detail->get_array()) : text_of(*detail));
            return;
        }
    }
    const std::string_view title = html_title(body);
    error.body_excerpt = printable_excerpt(title.empty() ? body : title);
}

}  // namespace perplexity::detail
