// One HTTP/1.1 connection to the API origin, over TLS or (for loopback) plain TCP, with a timeout on
// every step. It reports failures as an IoFailure naming the step, so the client can say exactly what
// went wrong and decide whether the request may be sent again.
#pragma once

#include <perplexity/detail/io_step.hpp>
#include <perplexity/detail/request.hpp>
#include <perplexity/detail/response.hpp>
#include <perplexity/detail/url.hpp>
#include <perplexity/expected.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/socket.h>
#endif

namespace perplexity::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;

struct ConnectSettings {
    std::chrono::milliseconds connect_timeout{};
    std::chrono::milliseconds tls_handshake_timeout{};
};

template <class T>
using IoResult = expected<T, IoFailure>;

class Connection {
  public:
    using TcpStream = beast::tcp_stream;
    using TlsStream = beast::ssl_stream<beast::tcp_stream>;

    /// Resolves, connects and (for https) handshakes with certificate and host name verification.
    static asio::awaitable<IoResult<std::unique_ptr<Connection>>> open(const Origin& origin,
                                                                       ssl::context* tls,
                                                                       ConnectSettings settings) {
        const auto executor = co_await asio::this_coro::executor;
        auto endpoints = co_await resolve(executor, origin, settings.connect_timeout);
        if (!endpoints) {
            co_return unexpected(std::move(endpoints).error());
        }

        TcpStream tcp(executor);
        if (auto injected = injected_failure(IoStep::connect)) {
            co_return unexpected(IoFailure{IoStep::connect, injected});
        }
        tcp.expires_after(settings.connect_timeout);
        auto [connect_ec, endpoint] =
            co_await tcp.async_connect(*endpoints, asio::as_tuple(asio::use_awaitable));
        if (connect_ec) {
            co_return unexpected(IoFailure{IoStep::connect, connect_ec});
        }
        tcp.socket().set_option(asio::ip::tcp::no_delay(true));
        tcp.expires_never();

        if (!origin.tls) {
            co_return std::make_unique<Connection>(std::move(tcp));
        }

        TlsStream stream(std::move(tcp), *tls);
        SSL* ssl_handle = stream.native_handle();
        // SNI carries host names only (RFC 6066); the verification target is the name or the address.
        if (!origin.host_is_ip_literal) {
            if (SSL_set_tlsext_host_name(ssl_handle, origin.host.c_str()) != 1 ||
                SSL_set1_host(ssl_handle, origin.host.c_str()) != 1) {
                co_return unexpected(IoFailure{IoStep::tls_handshake, ssl_error()});
            }
        } else if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_handle), origin.host.c_str()) != 1) {
            co_return unexpected(IoFailure{IoStep::tls_handshake, ssl_error()});
        }
        if (auto injected = injected_failure(IoStep::tls_handshake)) {
            co_return unexpected(IoFailure{IoStep::tls_handshake, injected});
        }
        beast::get_lowest_layer(stream).expires_after(settings.tls_handshake_timeout);
        auto [handshake_ec] =
            co_await stream.async_handshake(ssl::stream_base::client, asio::as_tuple(asio::use_awaitable));
        if (handshake_ec) {
            IoFailure failure{IoStep::tls_handshake, handshake_ec};
            if (const long verdict = SSL_get_verify_result(ssl_handle); verdict != X509_V_OK) {
                failure.verification_problem = X509_verify_cert_error_string(verdict);
            }
            co_return unexpected(std::move(failure));
        }
        beast::get_lowest_layer(stream).expires_never();
        co_return std::make_unique<Connection>(std::move(stream));
    }

    explicit Connection(TcpStream stream) : stream_(std::move(stream)) {}
    explicit Connection(TlsStream stream) : stream_(std::move(stream)) {}

    /// Writes one request and reads its response, all within `limits.timeout`.
    asio::awaitable<IoResult<HttpResponse>> exchange(const HttpRequest& request, ExchangeLimits limits) {
        if (auto injected = injected_failure(IoStep::write)) {
            co_return unexpected(IoFailure{IoStep::write, injected, true});
        }
        tcp().expires_after(limits.timeout);
        auto [write_ec, written] = co_await std::visit(
            [&](auto& stream) {
                return asio::async_write(stream, asio::buffer(request.wire),
                                         asio::as_tuple(asio::use_awaitable));
            },
            stream_);
        if (write_ec) {
            co_return unexpected(IoFailure{IoStep::write, write_ec, true});
        }

        http::response_parser<http::string_body> parser;
        apply_limits(parser, limits);
        if (auto injected = injected_failure(IoStep::read_header)) {
            co_return unexpected(IoFailure{IoStep::read_header, injected, true});
        }
        // One read for the header and the body: a composed operation and a trip through the scheduler
        // fewer than reading them apart. The parser still tells which of the two a failure hit.
        auto [read_ec, read_bytes] = co_await std::visit(
            [&](auto& stream) {
                return http::async_read(stream, buffer_, parser, asio::as_tuple(asio::use_awaitable));
            },
            stream_);
        if (read_ec) {
            if (!parser.is_header_done()) {
                co_return unexpected(
                    IoFailure{IoStep::read_header, read_ec, !parser.got_some() && buffer_.size() == 0});
            }
            co_return unexpected(IoFailure{IoStep::read_body, read_ec});
        }
        if (auto injected = injected_failure(IoStep::read_body)) {
            co_return unexpected(IoFailure{IoStep::read_body, injected});
        }
        tcp().expires_never();
        co_return parser.release();
    }

    /// Whether the last response was all the server sent. Bytes past its end cannot belong to any
    /// request (this client never pipelines), so a connection holding some must not carry another.
    bool nothing_buffered() const noexcept { return buffer_.size() == 0; }

    /// Whether an idle connection can carry another request. A server that closed it while it sat in
    /// the pool has left an EOF (or a TLS close_notify) waiting to be read; an idle connection must
    /// have nothing to read, so anything readable means it is finished.
    bool looks_reusable() {
        auto& socket = tcp().socket();
        if (!socket.is_open()) {
            return false;
        }
#if defined(__unix__) || defined(__APPLE__)
        char probe = 0;
        const auto received = ::recv(socket.native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
        return received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
#else
        boost::system::error_code ec;
        return socket.available(ec) == 0 && !ec;
#endif
    }

    /// Closes without a TLS close_notify: every response is length-delimited, so nothing depends on
    /// it, and waiting for the peer's reply would hold resources. A failed shutdown changes nothing.
    void close() noexcept {
        boost::system::error_code ignored;
        if (!injected_failure(IoStep::shutdown)) {
            tcp().socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        }
        tcp().socket().close(ignored);
    }

  private:
    static asio::awaitable<IoResult<asio::ip::tcp::resolver::results_type>> resolve(
        asio::any_io_executor executor, const Origin& origin, std::chrono::milliseconds limit) {
        if (auto injected = injected_failure(IoStep::resolve)) {
            co_return unexpected(IoFailure{IoStep::resolve, injected});
        }
        // An address needs no resolving, and no resolver thread.
        if (auto literal = literal_endpoint(origin)) {
            co_return asio::ip::tcp::resolver::results_type::create(*literal, origin.host, origin.port);
        }
        // The resolver has no timeout of its own: a timer cancels it. Both live in shared state, since
        // the timer's handler may run after this frame is gone.
        struct Resolution {
            explicit Resolution(asio::any_io_executor ex) : resolver(ex), timer(ex) {}
            asio::ip::tcp::resolver resolver;
            asio::steady_timer timer;
            bool timed_out = false;
        };
        auto state = std::make_shared<Resolution>(executor);
        state->timer.expires_after(limit);
        state->timer.async_wait([weak = std::weak_ptr<Resolution>(state)](boost::system::error_code ec) {
            if (auto alive = weak.lock(); alive && !ec) {
                alive->timed_out = true;
                alive->resolver.cancel();
            }
        });
        auto [ec, results] = co_await state->resolver.async_resolve(origin.host, origin.port,
                                                                    asio::as_tuple(asio::use_awaitable));
        state->timer.cancel();
        if (state->timed_out) {
            co_return unexpected(IoFailure{IoStep::resolve, beast::error::timeout});
        }
        if (ec) {
            co_return unexpected(IoFailure{IoStep::resolve, ec});
        }
        co_return results;
    }

    /// The endpoint of an origin whose host is an IP address, if it is one.
    static std::optional<asio::ip::tcp::endpoint> literal_endpoint(const Origin& origin) {
        boost::system::error_code ec;
        const auto address = asio::ip::make_address(origin.host, ec);
        unsigned short port = 0;
        const auto [end, error] =
            std::from_chars(origin.port.data(), origin.port.data() + origin.port.size(), port);
        if (ec || error != std::errc() || end != origin.port.data() + origin.port.size()) {
            return std::nullopt;
        }
        return asio::ip::tcp::endpoint(address, port);
    }

    static boost::system::error_code ssl_error() {
        return {static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category()};
    }

    TcpStream& tcp() {
        return std::visit([](auto& stream) -> TcpStream& { return beast::get_lowest_layer(stream); },
                          stream_);
    }

    std::variant<TcpStream, TlsStream> stream_;
    beast::flat_buffer buffer_;
};

}  // namespace perplexity::detail
