// A stateful stand-in for Perplexity's async APIs (the Sonar async chat completions and the Agent API's
// background responses), served over HTTPS or HTTP with Boost.Beast on a caller-provided executor.
//
// Everything runs on that one executor, so tests can drive client and simulator from a single io_context.
// Lifetime rule, as for any Asio I/O object: destroy (or stop) the Simulator before its io_context.
#pragma once

#include <perplexity_sim/api.hpp>
#include <perplexity_sim/certificates.hpp>
#include <perplexity_sim/options.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

namespace perplexity_sim {

namespace detail {

namespace net = boost::asio;
namespace beast = boost::beast;

// Shared between the Simulator and its coroutines, so a coroutine that is still unwinding after stop()
// never touches a destroyed object.
struct ServerState {
    ServerState(net::any_io_executor executor_in, SimulatorOptions options_in)
        : executor(std::move(executor_in)),
          options(std::move(options_in)),
          api(options),
          acceptor(executor),
          // A stream of its own, so turning random faults on never shifts the jobs' seeded sequences.
          fault_rng(options.seed ^ 0x94d049bb133111ebULL) {}

    net::any_io_executor executor;
    SimulatorOptions options;
    Api api;
    std::optional<net::ssl::context> tls;
    std::string ca_pem;
    net::ip::tcp::acceptor acceptor;
    net::ip::address bound_address;
    std::uint16_t bound_port = 0;
    // Every live connection, so stop() can close them; entries point into coroutine frames and are removed
    // by the coroutine itself before its frame goes away.
    std::unordered_map<std::uint64_t, beast::tcp_stream*> connections;
    std::uint64_t next_connection_id = 0;
    std::size_t connections_accepted = 0;
    std::deque<Fault> faults;
    std::mt19937_64 fault_rng;
    SimulatorStats traffic;  // the per-operation counters; the rest of the stats live elsewhere
    bool started = false;
    bool stopped = false;
};

class ConnectionRegistration {
  public:
    ConnectionRegistration(ServerState& state, beast::tcp_stream& stream)
        : state_(state), id_(state.next_connection_id++) {
        state_.connections.emplace(id_, &stream);
    }
    ~ConnectionRegistration() { state_.connections.erase(id_); }
    ConnectionRegistration(const ConnectionRegistration&) = delete;
    ConnectionRegistration& operator=(const ConnectionRegistration&) = delete;

  private:
    ServerState& state_;
    std::uint64_t id_;
};

// How a connection's request loop ended, which decides how politely the socket is closed.
enum class Ending {
    graceful,  // we answered with `Connection: close`
    drop,      // requests_per_connection reached: vanish without warning
    abort,     // peer gone, timeout, stop() or a broken stream
};

inline void report_exception(std::exception_ptr error) {
    if (!error) {
        return;
    }
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        std::cerr << "perplexity-sim: internal error: " << e.what() << '\n';
    } catch (...) {
        std::cerr << "perplexity-sim: internal error\n";
    }
}

// Sends FIN without TLS close_notify: to the client this looks like a server that silently dropped the
// connection, which is exactly what the drop knob is meant to exercise.
inline void close_transport(beast::tcp_stream& stream) {
    boost::system::error_code ec;
    stream.socket().shutdown(net::ip::tcp::socket::shutdown_send, ec);
    stream.close();
}

template <class Stream>
net::awaitable<Ending> answer_read_error(ServerState& state, Stream& stream, boost::system::error_code ec) {
    Response res;
    if (ec == http::error::body_limit) {
        res =
            state.api.reject(http::status::payload_too_large, "Request body too large", "request_too_large");
    } else if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
               ec != http::error::end_of_stream && ec != http::error::partial_message) {
        res = state.api.reject(http::status::bad_request, "Malformed HTTP request", "bad_request");
    } else {
        co_return Ending::abort;
    }
    beast::get_lowest_layer(stream).expires_after(state.options.io_timeout);
    co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
    co_return ec ? Ending::abort : Ending::graceful;
}

// The Agent API's paths, whatever the method, so a fault aimed at one of its operations also meets a
// request with the wrong method; nothing for any other path.
inline std::optional<Operation> classify_agent(std::string_view path) {
    while (path.ends_with('/')) {
        path.remove_suffix(1);
    }
    if (path == "/v1/responses" || path == "/v1/agent") {
        return Operation::create_response;
    }
    constexpr std::string_view item_prefix = "/v1/responses/";
    if (!path.starts_with(item_prefix)) {
        return std::nullopt;
    }
    return path.ends_with("/cancel") && path.size() > item_prefix.size() + 7 ? Operation::cancel_response
                                                                             : Operation::retrieve_response;
}

inline Operation classify(const Request& request) {
    if (const auto agent = classify_agent(request.target().substr(0, request.target().find('?')))) {
        return *agent;
    }
    if (request.method() == http::verb::post) {
        return Operation::create;
    }
    std::string_view path = request.target();
    path = path.substr(0, path.find('?'));
    while (path.ends_with('/')) {
        path.remove_suffix(1);
    }
    return path.ends_with("/async/chat/completions") || path.ends_with("/v1/async/sonar") ? Operation::list
                                                                                          : Operation::get;
}

inline void count_arrival(ServerState& state, Operation operation) {
    switch (operation) {
        case Operation::create:
            ++state.traffic.creates_received;
            state.traffic.create_arrivals.push_back(std::chrono::steady_clock::now());
            break;
        case Operation::get:
            ++state.traffic.gets_received;
            break;
        case Operation::list:
            ++state.traffic.lists_received;
            break;
        case Operation::create_response:
            ++state.traffic.response_creates_received;
            break;
        case Operation::retrieve_response:
            ++state.traffic.retrieves_received;
            break;
        case Operation::cancel_response:
            ++state.traffic.cancels_received;
            break;
        case Operation::any:
            break;
    }
}

// SimulatorOptions::fault_ratio: the kinds of trouble a client meets in production, where a 429's hint is
// short enough that a client obeying it rides through.
inline std::optional<Fault> random_fault(ServerState& state, Operation operation) {
    if (state.options.fault_ratio <= 0.0) {
        return std::nullopt;
    }
    // Drawn for every request, so which requests misbehave depends only on the seed and their order.
    if (std::uniform_real_distribution<double>(0.0, 1.0)(state.fault_rng) >= state.options.fault_ratio) {
        return std::nullopt;
    }
    ++state.traffic.faults_applied;
    switch (std::uniform_int_distribution<int>(0, 2)(state.fault_rng)) {
        case 0:
            return Fault{.operation = operation, .action = Fault::Action::drop_handled};
        case 1:
            return Fault{.operation = operation, .action = Fault::Action::respond, .status = 503};
        default: {
            const auto hint = std::uniform_int_distribution<int>(1, 5)(state.fault_rng);
            return Fault{.operation = operation,
                         .action = Fault::Action::respond,
                         .status = 429,
                         .headers = {{"retry-after-ms", std::to_string(hint)}}};
        }
    }
}

inline std::optional<Fault> take_fault(ServerState& state, Operation operation) {
    for (auto it = state.faults.begin(); it != state.faults.end(); ++it) {
        if (it->operation == Operation::any || it->operation == operation) {
            Fault fault = std::move(*it);
            state.faults.erase(it);
            ++state.traffic.faults_applied;
            return fault;
        }
    }
    return random_fault(state, operation);
}

inline Response fault_response(ServerState& state, const Fault& fault, const Request& request) {
    const auto status = static_cast<http::status>(fault.status);
    Response response = state.api.reject(status, "Simulated failure", "simulated_error");
    if (fault.body) {
        response.body() = *fault.body;
    }
    for (const auto& [name, value] : fault.headers) {
        response.set(name, value);
    }
    response.keep_alive(request.keep_alive());
    response.prepare_payload();
    return response;
}

inline SimulatorStats collect_stats(const ServerState& state) {
    SimulatorStats stats = state.traffic;
    stats.connections_accepted = state.connections_accepted;
    stats.requests = state.api.requests();
    stats.jobs_created = state.api.jobs_created();
    stats.responses_created = state.api.responses_created();
    stats.responses_cancelled = state.api.responses_cancelled();
    stats.creates_rate_limited = state.api.creates_rate_limited();
    stats.admitted_creates = state.api.admitted_creates();
    stats.first_admitted_create = state.api.first_admitted_create();
    stats.last_admitted_create = state.api.last_admitted_create();
    return stats;
}

// The body of GET /sim/stats: every counter of SimulatorStats but the create arrival times, and the create
// rate limit in force (null for both when there is none).
inline boost::json::object stats_json(const SimulatorStats& stats, const SimulatorOptions& options) {
    const auto count = [](std::size_t n) { return static_cast<std::uint64_t>(n); };
    const bool limited = options.creates_per_minute != 0;
    return boost::json::object{
        {"connections_accepted", count(stats.connections_accepted)},
        {"requests", count(stats.requests)},
        {"jobs_created", count(stats.jobs_created)},
        {"creates_received", count(stats.creates_received)},
        {"gets_received", count(stats.gets_received)},
        {"lists_received", count(stats.lists_received)},
        {"response_creates_received", count(stats.response_creates_received)},
        {"retrieves_received", count(stats.retrieves_received)},
        {"cancels_received", count(stats.cancels_received)},
        {"responses_created", count(stats.responses_created)},
        {"responses_cancelled", count(stats.responses_cancelled)},
        {"faults_applied", count(stats.faults_applied)},
        {"creates_rate_limited", count(stats.creates_rate_limited)},
        {"admitted_creates", count(stats.admitted_creates)},
        {"admitted_create_span_ms", stats.admitted_create_span().count()},
        {"creates_per_minute",
         limited ? boost::json::value(options.creates_per_minute) : boost::json::value(nullptr)},
        {"create_burst", limited ? boost::json::value(options.create_burst) : boost::json::value(nullptr)}};
}

// The simulator's own endpoint, beside the API's paths (which all start with /async/ or /v1/).
inline constexpr std::string_view stats_path = "/sim/stats";

inline bool is_stats_request(const Request& request) {
    std::string_view path = request.target();
    path = path.substr(0, path.find('?'));
    while (path.ends_with('/')) {
        path.remove_suffix(1);
    }
    return path == stats_path;
}

// GET /sim/stats, no authorization needed. Neither counted nor ever faulted, so reading the counters
// changes neither them nor which requests --fault-ratio's seeded draws hit.
inline Response stats_response(const ServerState& state, const Request& request) {
    Response response;
    if (request.method() == http::verb::get) {
        response = json_response(http::status::ok, stats_json(collect_stats(state), state.options));
    } else {
        response =
            error_response(http::status::method_not_allowed, "Method Not Allowed", "method_not_allowed");
        response.set(http::field::allow, "GET");
    }
    response.version(request.version() == 10 ? 10 : 11);
    response.keep_alive(request.keep_alive());
    response.prepare_payload();
    return response;
}

template <class Stream>
net::awaitable<Ending> serve_requests(ServerState& state, Stream& stream) {
    beast::flat_buffer buffer;
    auto& transport = beast::get_lowest_layer(stream);
    unsigned answered = 0;
    for (;;) {
        boost::system::error_code ec;
        http::request_parser<http::string_body> parser;
        parser.header_limit(64 * 1024);
        parser.body_limit(state.options.max_request_body);

        transport.expires_after(state.options.io_timeout);
        co_await http::async_read_header(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
        if (state.stopped) {
            co_return Ending::abort;
        }
        if (ec) {
            co_return co_await answer_read_error(state, stream, ec);
        }
        // Clients that announce their body and wait for permission would otherwise stall until their own
        // timeout.
        if (const auto expect = parser.get().find(http::field::expect);
            expect != parser.get().end() && iequals_ascii(expect->value(), "100-continue")) {
            http::response<http::empty_body> proceed{http::status::continue_, parser.get().version()};
            co_await http::async_write(stream, proceed, net::redirect_error(net::use_awaitable, ec));
            if (ec || state.stopped) {
                co_return Ending::abort;
            }
        }
        co_await http::async_read(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
        if (state.stopped) {
            co_return Ending::abort;
        }
        if (ec) {
            co_return co_await answer_read_error(state, stream, ec);
        }

        const Request request = parser.release();
        const bool for_stats = is_stats_request(request);
        const Operation operation = classify(request);
        if (!for_stats) {
            count_arrival(state, operation);
        }
        Response response;
        if (for_stats) {
            response = stats_response(state, request);
        } else if (auto fault = take_fault(state, operation)) {
            switch (fault->action) {
                case Fault::Action::respond:
                    response = fault_response(state, *fault, request);
                    break;
                case Fault::Action::drop_handled:
                    state.api.handle(request);
                    co_return Ending::drop;
                case Fault::Action::drop_unhandled:
                    co_return Ending::drop;
                case Fault::Action::stall: {
                    // Holds the connection until the client gives up, the io timeout passes or stop().
                    char sink[256];
                    transport.expires_after(state.options.io_timeout);
                    co_await stream.async_read_some(net::buffer(sink),
                                                    net::redirect_error(net::use_awaitable, ec));
                    co_return Ending::abort;
                }
            }
        } else {
            response = state.api.handle(request);
        }
        ++answered;
        const bool drop =
            state.options.requests_per_connection != 0 && answered >= state.options.requests_per_connection;

        transport.expires_after(state.options.io_timeout);
        co_await http::async_write(stream, response, net::redirect_error(net::use_awaitable, ec));
        if (ec || state.stopped) {
            co_return Ending::abort;
        }
        if (drop) {
            co_return Ending::drop;
        }
        if (!response.keep_alive()) {
            co_return Ending::graceful;
        }
    }
}

inline net::awaitable<void> serve_https(std::shared_ptr<ServerState> state, net::ip::tcp::socket socket) {
    beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), *state->tls);
    auto& transport = beast::get_lowest_layer(stream);
    ConnectionRegistration registration(*state, transport);
    if (state->stopped) {
        transport.close();  // accepted just before stop(), so stop() could not see it
        co_return;
    }
    boost::system::error_code ec;
    transport.expires_after(state->options.io_timeout);
    co_await stream.async_handshake(net::ssl::stream_base::server,
                                    net::redirect_error(net::use_awaitable, ec));
    if (ec || state->stopped) {
        // Typically the client rejected our certificate; there is nobody left to tell.
        transport.close();
        co_return;
    }
    const Ending ending = co_await serve_requests(*state, stream);
    if (ending == Ending::graceful && !state->stopped) {
        // Short and bounded: a client that never answers close_notify must not keep the coroutine alive.
        transport.expires_after(std::chrono::seconds(2));
        co_await stream.async_shutdown(net::redirect_error(net::use_awaitable, ec));
    }
    close_transport(transport);
}

inline net::awaitable<void> serve_http(std::shared_ptr<ServerState> state, net::ip::tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    ConnectionRegistration registration(*state, stream);
    if (!state->stopped) {
        co_await serve_requests(*state, stream);
    }
    close_transport(stream);
}

inline net::awaitable<void> accept_loop(std::shared_ptr<ServerState> state) {
    for (;;) {
        boost::system::error_code ec;
        net::ip::tcp::socket socket =
            co_await state->acceptor.async_accept(net::redirect_error(net::use_awaitable, ec));
        if (state->stopped || !state->acceptor.is_open()) {
            co_return;
        }
        if (ec) {
            // Out of descriptors and the like: back off briefly instead of spinning on the error.
            net::steady_timer pause(state->executor, std::chrono::milliseconds(50));
            co_await pause.async_wait(net::redirect_error(net::use_awaitable, ec));
            continue;
        }
        ++state->connections_accepted;
        socket.set_option(net::ip::tcp::no_delay(true), ec);
        if (state->tls) {
            net::co_spawn(state->executor, serve_https(state, std::move(socket)), report_exception);
        } else {
            net::co_spawn(state->executor, serve_http(state, std::move(socket)), report_exception);
        }
    }
}

inline net::ssl::context make_server_tls(const ServerIdentity& identity, bool legacy_tls_only = false) {
    net::ssl::context context{net::ssl::context::tls_server};
    context.set_options(net::ssl::context::default_workarounds | net::ssl::context::single_dh_use);
    SSL_CTX* native = context.native_handle();
    if (legacy_tls_only) {
        // An outdated server for tests: TLS 1.0 and 1.1 only, which OpenSSL 3 allows at security level 0.
        SSL_CTX_set_security_level(native, 0);
        if (SSL_CTX_set_min_proto_version(native, TLS1_VERSION) != 1 ||
            SSL_CTX_set_max_proto_version(native, TLS1_1_VERSION) != 1) {
            throw std::runtime_error("cannot limit the server to TLS 1.0/1.1");
        }
    } else if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
        throw std::runtime_error("cannot require TLS 1.2");
    }
    context.use_certificate_chain(net::buffer(identity.certificate_chain_pem));
    context.use_private_key(net::buffer(identity.private_key_pem), net::ssl::context::pem);
    return context;
}

// The loopback names always, plus the bind address when it is a specific non-loopback one, so clients can
// verify the host they actually dial.
inline LoopbackPki make_pki(const std::string& bind_address) {
    boost::system::error_code ec;
    const auto address = net::ip::make_address(bind_address, ec);
    if (ec || address.is_loopback() || address.is_unspecified()) {
        return LoopbackPki::generate();
    }
    auto authority = CertificateAuthority::generate();
    auto identity = authority.issue({"localhost"}, {"127.0.0.1", "::1", address.to_string()});
    return LoopbackPki{std::move(authority), std::move(identity)};
}

}  // namespace detail

class Simulator {
  public:
    // Prepares TLS material (generating a CA and leaf when needed) but opens no socket yet.
    Simulator(boost::asio::any_io_executor executor, SimulatorOptions options)
        : state_(std::make_shared<detail::ServerState>(std::move(executor), std::move(options))) {
        auto& state = *state_;
        if (!state.options.https) {
            return;
        }
        if (state.options.identity) {
            state.ca_pem = state.options.ca_pem;
            state.tls.emplace(
                detail::make_server_tls(*state.options.identity, state.options.legacy_tls_only));
        } else {
            auto pki = detail::make_pki(state.options.bind_address);
            state.ca_pem = pki.authority.certificate_pem();
            state.tls.emplace(detail::make_server_tls(pki.identity, state.options.legacy_tls_only));
        }
    }

    ~Simulator() { stop(); }

    Simulator(const Simulator&) = delete;
    Simulator& operator=(const Simulator&) = delete;
    Simulator(Simulator&&) noexcept = default;
    Simulator& operator=(Simulator&& other) noexcept {
        if (this != &other) {
            stop();
            state_ = std::move(other.state_);
        }
        return *this;
    }

    // Binds, listens and starts accepting. Throws boost::system::system_error when the address is invalid or
    // the port is taken, std::logic_error when called twice or after stop().
    void start() {
        namespace net = boost::asio;
        auto& state = *state_;
        if (state.started || state.stopped) {
            throw std::logic_error("perplexity_sim::Simulator::start called twice or after stop");
        }
        boost::system::error_code ec;
        const auto address = net::ip::make_address(state.options.bind_address, ec);
        if (ec) {
            throw boost::system::system_error(boost::system::error_code(ec.value(), ec.category()),
                                              "invalid bind address '" + state.options.bind_address + "'");
        }
        const net::ip::tcp::endpoint endpoint{address, state.options.port};
        auto fail_if = [&](const char* step) {
            if (ec) {
                boost::system::error_code ignored;
                state.acceptor.close(ignored);
                // Rebuilt without the source location, which would only clutter the message.
                throw boost::system::system_error(boost::system::error_code(ec.value(), ec.category()),
                                                  std::string("cannot ") + step + " " +
                                                      state.options.bind_address + " port " +
                                                      std::to_string(state.options.port));
            }
        };
        state.acceptor.open(endpoint.protocol(), ec);
        fail_if("open a socket for");
        state.acceptor.set_option(net::ip::tcp::acceptor::reuse_address(true), ec);
        fail_if("set SO_REUSEADDR on");
        state.acceptor.bind(endpoint, ec);
        fail_if("bind to");
        state.acceptor.listen(net::socket_base::max_listen_connections, ec);
        fail_if("listen on");
        const auto local = state.acceptor.local_endpoint(ec);
        fail_if("query the address of");
        state.bound_address = local.address();
        state.bound_port = local.port();
        state.started = true;
        net::co_spawn(state.executor, detail::accept_loop(state_), detail::report_exception);
    }

    // Closes the listener and every open connection. Coroutines finish as soon as the executor runs their
    // cancelled operations; nothing is left pending afterwards. Idempotent.
    void stop() noexcept {
        if (!state_ || state_->stopped) {
            return;
        }
        state_->stopped = true;
        boost::system::error_code ignored;
        state_->acceptor.close(ignored);
        // Closing never runs handlers inline, so the map cannot change under this loop.
        for (auto& [id, stream] : state_->connections) {
            stream->close();
        }
    }

    std::uint16_t port() const { return state_->bound_port; }

    // Where clients should connect: an unspecified bind address is reported as its loopback counterpart.
    std::string base_url() const {
        const auto& state = *state_;
        std::string url = state.tls ? "https://" : "http://";
        auto address = state.bound_address;
        if (address.is_unspecified()) {
            address = address.is_v6() ? boost::asio::ip::address(boost::asio::ip::address_v6::loopback())
                                      : boost::asio::ip::address(boost::asio::ip::address_v4::loopback());
        }
        url += address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
        url += ":" + std::to_string(state.bound_port);
        return url;
    }

    // The CA that signed the served certificate: generated internally, or SimulatorOptions::ca_pem when the
    // caller brought the identity. Empty for plain HTTP.
    const std::string& ca_certificate_pem() const { return state_->ca_pem; }

    SimulatorStats stats() const { return detail::collect_stats(*state_); }

    // Queues a scripted misbehaviour; see Fault.
    void inject(Fault fault) { state_->faults.push_back(std::move(fault)); }

    // Faults queued and not yet taken by a request.
    std::size_t pending_faults() const { return state_->faults.size(); }

    const SimulatorOptions& options() const { return state_->options; }

  private:
    std::shared_ptr<detail::ServerState> state_;
};

}  // namespace perplexity_sim
