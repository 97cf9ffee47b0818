// A plain-HTTP loopback server that answers with whatever raw bytes a test scripts: the misbehaviour of
// broken servers and proxies that the simulator, a correct server, never shows.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace test {

/// What the server does with one request.
struct Script {
    /// false: act as soon as the connection is accepted, without reading anything.
    bool read_request = true;
    /// Written exactly as given: status line, headers and body, right or wrong.
    std::string reply{};
    /// 0 writes the reply at once; otherwise this many bytes a write, with `pause` between writes.
    std::size_t piece = 0;
    std::chrono::milliseconds pause{0};
    enum class Then {
        serve_next,  // read the next request on this connection
        close,       // close the connection (an orderly FIN)
        reset,       // abort the connection (an RST)
        hold,        // keep the connection open and never answer again
    };
    Then then = Then::serve_next;
};

/// The request as the server read it; `target` is empty when the script did not read one.
struct SeenRequest {
    std::size_t index = 0;  // 0 for the first request the server handles
    std::string target{};
};

class ScriptedServer {
  public:
    using Scripter = std::function<Script(const SeenRequest&)>;

    ScriptedServer(boost::asio::io_context& io, Scripter scripter)
        : state_(std::make_shared<State>(io.get_executor(), std::move(scripter))) {
        namespace ip = boost::asio::ip;
        state_->acceptor.open(ip::tcp::v4());
        state_->acceptor.bind({ip::address_v4::loopback(), 0});
        state_->acceptor.listen();
        boost::asio::co_spawn(io, accept_loop(state_), boost::asio::detached);
    }

    ScriptedServer(const ScriptedServer&) = delete;
    ScriptedServer& operator=(const ScriptedServer&) = delete;

    ~ScriptedServer() {
        boost::system::error_code ignored;
        state_->acceptor.close(ignored);
        for (auto& weak : state_->sockets) {
            if (auto socket = weak.lock()) {
                socket->close(ignored);
            }
        }
    }

    std::string base_url() const {
        return "http://127.0.0.1:" + std::to_string(state_->acceptor.local_endpoint().port());
    }
    std::size_t connections() const { return state_->connections; }
    std::size_t requests() const { return state_->requests; }

  private:
    using Socket = boost::asio::ip::tcp::socket;

    struct State {
        State(boost::asio::any_io_executor executor, Scripter scripter)
            : acceptor(executor), scripter(std::move(scripter)) {}
        boost::asio::ip::tcp::acceptor acceptor;
        Scripter scripter;
        std::vector<std::weak_ptr<Socket>> sockets;
        std::size_t connections = 0;
        std::size_t requests = 0;
    };

    static boost::asio::awaitable<void> accept_loop(std::shared_ptr<State> state) {
        namespace asio = boost::asio;
        for (;;) {
            auto [ec, socket] = co_await state->acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
            if (ec) {
                co_return;
            }
            ++state->connections;
            auto shared = std::make_shared<Socket>(std::move(socket));
            state->sockets.push_back(shared);
            asio::co_spawn(state->acceptor.get_executor(), serve(state, shared), asio::detached);
        }
    }

    static boost::asio::awaitable<void> serve(std::shared_ptr<State> state, std::shared_ptr<Socket> socket) {
        namespace asio = boost::asio;
        namespace http = boost::beast::http;
        boost::beast::flat_buffer buffer;
        for (;;) {
            // Which script applies is only known once the request is read, unless the script says not
            // to read it; ask with an empty target first to find out.
            SeenRequest seen{.index = state->requests};
            Script script = state->scripter(seen);
            if (script.read_request) {
                http::request<http::string_body> request;
                auto [ec, n] =
                    co_await http::async_read(*socket, buffer, request, asio::as_tuple(asio::use_awaitable));
                if (ec) {
                    co_return;
                }
                seen.target = std::string(request.target());
                script = state->scripter(seen);
            }
            ++state->requests;
            if (!co_await write_reply(*socket, script)) {
                co_return;
            }
            boost::system::error_code ignored;
            switch (script.then) {
                case Script::Then::serve_next:
                    continue;
                case Script::Then::close:
                    socket->shutdown(Socket::shutdown_both, ignored);
                    socket->close(ignored);
                    co_return;
                case Script::Then::reset:
                    socket->set_option(Socket::linger(true, 0), ignored);
                    socket->close(ignored);
                    co_return;
                case Script::Then::hold:
                    co_await drain(*socket);
                    co_return;
            }
        }
    }

    static boost::asio::awaitable<bool> write_reply(Socket& socket, const Script& script) {
        namespace asio = boost::asio;
        const std::size_t piece = script.piece == 0 ? script.reply.size() : script.piece;
        asio::steady_timer timer(socket.get_executor());
        for (std::size_t at = 0; at < script.reply.size(); at += piece) {
            if (at > 0 && script.pause.count() > 0) {
                timer.expires_after(script.pause);
                co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
            }
            const std::size_t size = std::min(piece, script.reply.size() - at);
            auto [ec, n] = co_await asio::async_write(socket, asio::buffer(script.reply.data() + at, size),
                                                      asio::as_tuple(asio::use_awaitable));
            if (ec) {
                co_return false;
            }
        }
        co_return true;
    }

    /// Reads and drops whatever arrives until the peer goes away.
    static boost::asio::awaitable<void> drain(Socket& socket) {
        namespace asio = boost::asio;
        char sink[512];
        for (;;) {
            auto [ec, n] =
                co_await socket.async_read_some(asio::buffer(sink), asio::as_tuple(asio::use_awaitable));
            if (ec) {
                co_return;
            }
        }
    }

    std::shared_ptr<State> state_;
};

/// A complete HTTP/1.1 response with a correct Content-Length.
inline std::string http_response(int status, const std::string& body,
                                 const std::string& extra_headers = "Content-Type: application/json\r\n") {
    return "HTTP/1.1 " + std::to_string(status) + " Status\r\n" + extra_headers +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

/// The JSON of a job with the given id and status.
inline std::string job_json(const std::string& id, const std::string& status = "CREATED") {
    return R"({"id":")" + id + R"(","model":"sonar-deep-research","created_at":1700000000,"status":")" +
           status + R"("})";
}

}  // namespace test
