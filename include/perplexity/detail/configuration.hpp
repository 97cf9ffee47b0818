// Checking a Client's options once, at construction: what the requests look like (origin, target,
// common header lines) and whom TLS trusts. Unusable options become one invalid_argument Error.
#pragma once

#include <perplexity/detail/error_text.hpp>
#include <perplexity/detail/request.hpp>
#include <perplexity/detail/url.hpp>
#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>
#include <perplexity/options.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/context.hpp>

#include <openssl/ssl.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>

namespace perplexity::detail {

/// What a Client's options come to once checked.
struct Configuration {
    Origin origin{};
    RequestRenderer requests{};
};

/// Whether `text` holds a control character (or, with `space_too`, a space): text that goes onto the
/// request line or into a header line as it is must not.
inline bool has_control(std::string_view text, bool space_too) {
    return std::any_of(text.begin(), text.end(), [space_too](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte < 0x20 || byte == 0x7f || (space_too && byte == ' ');
    });
}

/// Makes `tls` verify peers against the CAs the options name (or the system's store): TLS 1.2 or
/// newer, and no read or write buffers kept by idle connections. Says why when it cannot.
inline std::optional<Error> configure_tls(const ClientOptions& options, boost::asio::ssl::context& tls) {
    boost::system::error_code ec;
    // Idle connections then hold no read or write buffers: with many of them, that is most of their
    // memory.
    SSL_CTX_set_mode(tls.native_handle(), SSL_MODE_RELEASE_BUFFERS);
    // TLS 1.2 is the floor: older versions have known weaknesses and the API does not need them.
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
    tls.set_verify_mode(boost::asio::ssl::verify_peer, ec);
    if (options.ca_file.empty() && options.ca_pem.empty() && options.ca_directory.empty()) {
        tls.set_default_verify_paths(ec);
        if (ec) {
            return invalid_argument("the system's trusted certificate store could not be loaded: " +
                                    ec.message());
        }
    }
    if (!options.ca_file.empty()) {
        tls.load_verify_file(options.ca_file, ec);
        if (ec) {
            return invalid_argument("ClientOptions::ca_file \"" + options.ca_file +
                                    "\" could not be loaded as PEM certificates: " + ec.message());
        }
    }
    if (!options.ca_pem.empty()) {
        tls.add_certificate_authority(boost::asio::buffer(options.ca_pem), ec);
        if (ec) {
            return invalid_argument("ClientOptions::ca_pem could not be read as PEM certificates: " +
                                    ec.message());
        }
    }
    if (!options.ca_directory.empty()) {
        tls.add_verify_path(options.ca_directory, ec);
        if (ec) {
            return invalid_argument("ClientOptions::ca_directory \"" + options.ca_directory +
                                    "\" could not be used: " + ec.message());
        }
    }
    return std::nullopt;
}

/// Why the path option `name` (e.g. "path_prefix") cannot be appended to the base URL's path, if it
/// cannot; `example` is a usable value.
inline std::optional<Error> check_path(std::string_view name, const std::string& path,
                                       std::string_view example) {
    if (has_control(path, true)) {
        return invalid_argument("ClientOptions::" + std::string(name) +
                                " contains a space or a control character");
    }
    if (!path.starts_with('/')) {
        return invalid_argument("ClientOptions::" + std::string(name) + " must start with '/', e.g. \"" +
                                std::string(example) + "\"");
    }
    return std::nullopt;
}

/// Checks `options` and, for https, loads what `tls` trusts.
inline expected<Configuration, Error> configure(const ClientOptions& options,
                                                boost::asio::ssl::context& tls) {
    // These go onto the request line and into header lines as they are.
    if (has_control(options.base_url, true)) {
        return unexpected(
            invalid_argument("ClientOptions::base_url contains a space or a control character"));
    }
    if (auto refused = check_path("path_prefix", options.path_prefix, paths::async_chat_completions)) {
        return unexpected(std::move(*refused));
    }
    if (auto refused = check_path("responses_path", options.responses_path, paths::v1_responses)) {
        return unexpected(std::move(*refused));
    }
    if (has_control(options.user_agent, false)) {
        return unexpected(invalid_argument("ClientOptions::user_agent contains a control character"));
    }
    auto origin = parse_base_url(options.base_url, options.allow_insecure_http);
    if (!origin) {
        return unexpected(std::move(origin).error());
    }
    if (options.api_key.empty()) {
        return unexpected(invalid_argument(
            "no API key: set ClientOptions::api_key (options_from_environment reads PERPLEXITY_API_KEY)"));
    }
    if (has_control(options.api_key, true)) {
        return unexpected(
            invalid_argument("the API key contains a space, a line break or another control character"));
    }
    if (options.max_connections == 0) {
        return unexpected(invalid_argument("ClientOptions::max_connections must be at least 1"));
    }
    if (origin->tls) {
        if (auto refused = configure_tls(options, tls)) {
            return unexpected(std::move(*refused));
        }
    }
    std::string common_headers = "Host: " + origin->host_header + "\r\nAuthorization: Bearer " +
                                 options.api_key +
                                 "\r\nAccept: application/json\r\nUser-Agent: " + options.user_agent + "\r\n";
    std::string collection_target = origin->base_path + options.path_prefix;
    std::string responses_target = origin->base_path + options.responses_path;
    return Configuration{.origin = std::move(*origin),
                         .requests = RequestRenderer(std::move(collection_target),
                                                     std::move(responses_target), std::move(common_headers))};
}

}  // namespace perplexity::detail
