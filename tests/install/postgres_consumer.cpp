// A program using the PostgreSQL ledger, built against an installed (or subproject) perplexity-async
// through its PostgreSQL module (pkg-config perplexity-async-postgres, CMake perplexity::async_postgres,
// meson perplexity-async-postgres): it links only if the package brings libpq along. No database is
// needed: it opens a ledger at an address nothing listens on and exits 0 only if that fails the way
// PostgresLedger::open documents, with an ErrorKind::ledger Error that does not quote the password.
#include <perplexity/postgres_ledger.hpp>
#include <perplexity/version.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

namespace asio = boost::asio;
namespace px = perplexity;

int main() {
    std::cout << "perplexity-async " << px::version_string << '\n';

    // Port 1 on the loopback refuses at once; connect_timeout bounds the attempt if something drops it.
    const std::string conninfo = "postgresql://u:secret@127.0.0.1:1/db?connect_timeout=2";
    px::PostgresLedgerOptions options;
    options.connect_timeout = std::chrono::seconds(2);

    asio::io_context io;
    std::optional<px::expected<std::shared_ptr<px::PostgresLedger>, px::Error>> opened;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            opened.emplace(co_await px::PostgresLedger::open(io.get_executor(), conninfo, options));
            if (*opened) {  // something listens there after all: let io.run() return
                co_await (**opened)->close();
            }
        },
        asio::detached);
    io.run();

    bool passed = false;
    if (!opened) {
        std::cerr << "FAILED: PostgresLedger::open did not finish\n";
    } else if (*opened) {
        std::cerr << "FAILED: PostgresLedger::open connected to 127.0.0.1:1\n";
    } else {
        const px::Error& error = opened->error();
        std::cout << "open failed as expected: " << error << '\n';
        if (error.kind != px::ErrorKind::ledger) {
            std::cerr << "FAILED: the error is not an ErrorKind::ledger Error\n";
        } else if (px::to_string(error).find("secret") != std::string::npos) {
            std::cerr << "FAILED: the error quotes the password\n";
        } else {
            passed = true;
        }
    }
    std::cout << (passed ? "ok" : "FAILED") << '\n';
    return passed ? 0 : 1;
}
