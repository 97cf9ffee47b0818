// Base URL parsing and percent-encoding: just what talking to one API origin needs.
#pragma once

#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

namespace perplexity::detail {

/// Where requests go, split out of a base URL such as "https://api.perplexity.ai" or
/// "http://127.0.0.1:8080/proxy".
struct Origin {
    bool tls = true;
    /// As written in the URL, without the brackets of an IPv6 literal.
    std::string host{};
    std::string port{};
    /// Any path of the base URL, without a trailing slash ("" or "/proxy").
    std::string base_path{};
    /// The Host header value: host, with the port when it is not the scheme's default.
    std::string host_header{};
    bool host_is_ip_literal = false;
    bool host_is_loopback = false;
};

inline bool is_loopback_host(std::string_view host) {
    std::string lower(host);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (lower == "localhost" || lower.ends_with(".localhost")) {
        return true;
    }
    boost::system::error_code ec;
    const auto address = boost::asio::ip::make_address(lower, ec);
    return !ec && address.is_loopback();
}

inline expected<Origin, Error> parse_base_url(std::string_view url, bool allow_insecure_http) {
    const auto invalid = [&](std::string why) {
        return unexpected(
            Error{.kind = ErrorKind::invalid_argument,
                  .message = "ClientOptions::base_url \"" + std::string(url) + "\" " + std::move(why)});
    };
    Origin origin;
    std::string_view rest;
    if (url.starts_with("https://")) {
        rest = url.substr(8);
        origin.port = "443";
    } else if (url.starts_with("http://")) {
        origin.tls = false;
        rest = url.substr(7);
        origin.port = "80";
    } else {
        return invalid("must start with https:// (or http:// for a local server)");
    }
    const auto path_start = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, path_start);
    std::string_view path =
        path_start == std::string_view::npos ? std::string_view{} : rest.substr(path_start);
    if (path.find_first_of("?#") != std::string_view::npos) {
        return invalid("must not contain a query or fragment");
    }
    if (authority.find('@') != std::string_view::npos) {
        return invalid("must not contain user information; put the key in ClientOptions::api_key");
    }
    std::string_view host = authority;
    std::string_view port;
    if (authority.starts_with('[')) {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) {
            return invalid("has an unterminated IPv6 literal");
        }
        host = authority.substr(1, close - 1);
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (!after.starts_with(':')) {
                return invalid("has junk after the IPv6 literal");
            }
            port = after.substr(1);
        }
        origin.host_is_ip_literal = true;
    } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (host.empty()) {
        return invalid("has no host");
    }
    if (!port.empty()) {
        if (port.size() > 5 ||
            !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
            std::stoul(std::string(port)) == 0 || std::stoul(std::string(port)) > 65535) {
            return invalid("has an invalid port");
        }
        origin.port = std::string(port);
    }
    origin.host = std::string(host);
    if (!origin.host_is_ip_literal) {
        boost::system::error_code ec;
        boost::asio::ip::make_address_v4(origin.host, ec);
        origin.host_is_ip_literal = !ec;
    }
    origin.host_is_loopback = is_loopback_host(origin.host);
    if (!origin.tls && !origin.host_is_loopback && !allow_insecure_http) {
        return invalid(
            "uses plain http:// to a host that is not loopback; the API key would travel unencrypted. "
            "Use https://, or set ClientOptions::allow_insecure_http if you really mean it");
    }
    while (path.ends_with('/')) {
        path.remove_suffix(1);
    }
    origin.base_path = std::string(path);
    const bool default_port = origin.port == (origin.tls ? "443" : "80");
    const std::string bracketed =
        origin.host.find(':') != std::string::npos ? "[" + origin.host + "]" : origin.host;
    origin.host_header = default_port ? bracketed : bracketed + ":" + origin.port;
    return origin;
}

/// Whether `c` is an RFC 3986 unreserved character, which needs no percent-encoding.
constexpr bool is_unreserved(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/// Appends `text` to `out`, percent-encoding everything but RFC 3986 unreserved characters, which is
/// right for both a path segment and a query value. Job ids need no encoding, so that case is one
/// append.
inline void append_percent_encoded(std::string& out, std::string_view text) {
    if (std::all_of(text.begin(), text.end(), is_unreserved)) {
        out.append(text);
        return;
    }
    static constexpr char hex[] = "0123456789ABCDEF";
    for (const char c : text) {
        if (is_unreserved(c)) {
            out += c;
        } else {
            const auto byte = static_cast<unsigned char>(c);
            out += '%';
            out += hex[byte >> 4];
            out += hex[byte & 0x0F];
        }
    }
}

/// `text` percent-encoded; see append_percent_encoded.
inline std::string percent_encode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    append_percent_encoded(out, text);
    return out;
}

}  // namespace perplexity::detail
