// Scenario 3 of bench/run: the baseline for compile_async.cpp. The same program shape written on the
// libraries perplexity-async builds on, with nothing of its own: one HTTPS request with verification, its
// JSON answer parsed and one field printed. No retries, polling or typing, so the difference in compile time
// is what the library's headers add.
// Only the headers it needs, not the umbrella ones, so that the baseline is as cheap as it can be.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <iostream>
#include <string>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

asio::awaitable<void> ask(asio::ssl::context& tls) {
    const std::string host = "api.perplexity.ai";
    beast::ssl_stream<beast::tcp_stream> stream(co_await asio::this_coro::executor, tls);
    SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
    stream.set_verify_callback(asio::ssl::host_name_verification(host));
    asio::ip::tcp::resolver resolver(co_await asio::this_coro::executor);
    co_await beast::get_lowest_layer(stream).async_connect(
        co_await resolver.async_resolve(host, "443", asio::use_awaitable), asio::use_awaitable);
    co_await stream.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);

    http::request<http::string_body> request{http::verb::post, "/async/chat/completions", 11};
    request.set(http::field::host, host);
    request.set(http::field::authorization, "Bearer key");
    request.set(http::field::content_type, "application/json");
    request.body() = boost::json::serialize(boost::json::object{
        {"request",
         {{"model", "sonar-deep-research"},
          {"messages", boost::json::array{{{"role", "user"}, {"content", "How many stars?"}}}}}}});
    request.prepare_payload();
    co_await http::async_write(stream, request, asio::use_awaitable);

    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    co_await http::async_read(stream, buffer, response, asio::use_awaitable);
    boost::system::error_code ec;
    const boost::json::value body = boost::json::parse(response.body(), ec);
    if (const auto* status = body.is_object() ? body.as_object().if_contains("status") : nullptr) {
        std::cout << *status << '\n';
    }
}

}  // namespace

int main() {
    asio::io_context io;
    asio::ssl::context tls(asio::ssl::context::tls_client);
    tls.set_verify_mode(asio::ssl::verify_peer);
    tls.set_default_verify_paths();
    asio::co_spawn(io, ask(tls), asio::detached);
    io.run();
}
