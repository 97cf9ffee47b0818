// Scenario 3 of bench/run: what a translation unit pays for using this library. It does the least a real
// user does: one job run to its end and its answer printed. Compiled header-only and with
// PERPLEXITY_ASYNC_SEPARATE_COMPILATION; compile_bare.cpp is its counterpart without the library. Only the
// time to compile each (-c, no link) is measured.
#include <perplexity/async.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>

namespace {

boost::asio::awaitable<void> ask(perplexity::Client& client) {
    perplexity::ChatRequest request{.model = "sonar-deep-research",
                                    .messages = {{.role = "user", .content = "How many stars are there?"}}};
    const auto job = co_await client.run(std::move(request));
    if (!job) {
        std::cerr << job.error() << '\n';
        co_return;
    }
    std::cout << (job->response ? job->response->text() : std::string{}) << '\n';
}

}  // namespace

int main() {
    boost::asio::io_context io;
    perplexity::Client client(io.get_executor(), perplexity::options_from_environment());
    boost::asio::co_spawn(io, ask(client), boost::asio::detached);
    io.run();
}
