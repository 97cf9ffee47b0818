// callbacks: the library from code that does not use coroutines. Every operation is an awaitable, and
// asio::co_spawn turns it into an ordinary asynchronous operation with any completion token: a callback
// run on the io_context's thread, or a std::future that another thread blocks on.
//
//   callbacks --base-url https://127.0.0.1:8443 --ca-file ca.pem "How many moons has Mars?"
#include "example_support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <exception>
#include <future>
#include <iostream>
#include <string>
#include <thread>

namespace asio = boost::asio;
namespace px = perplexity;

namespace {

enum ExitCode { all_succeeded = 0, some_failed = 1, usage_error = 2 };

constexpr std::string_view usage = R"(usage: callbacks [options] [QUESTION...]

Runs create, get, wait, run and list twice: first chained through completion callbacks on the
io_context's own thread, then from the main thread through std::future while the io_context runs on
a second thread. Prints one line per operation.

options:
  --model NAME           model to use (default: sonar)
)";

constexpr std::string_view usage_tail = R"(  -h, --help             show this help

exit codes: 0 every operation succeeded, 1 some operation failed (the job FAILED, or another error;
            each is printed), 2 usage or configuration error
)";

struct Arguments {
    examples::ConnectionFlags connection{};
    std::string model = "sonar";
    std::string question{};
};

std::optional<Arguments> parse_arguments(int argc, char** argv) {
    Arguments arguments;
    examples::Flags flags("callbacks", argc, argv);
    while (flags.next()) {
        const std::string_view word = flags.word();
        bool bad = false;
        if (examples::parse_common_flag(flags, arguments.connection, usage, usage_tail, all_succeeded, bad)) {
            // handled
        } else if (word == "--model") {
            const auto value = flags.value();
            bad = !value;
            arguments.model = value.value_or("");
        } else if (word.starts_with("--")) {
            flags.unknown();
            return std::nullopt;
        } else {
            arguments.question += arguments.question.empty() ? "" : " ";
            arguments.question += word;
        }
        if (bad) {
            return std::nullopt;
        }
    }
    if (arguments.question.empty()) {
        arguments.question = "How many moons has Mars?";
    }
    return arguments;
}

/// One line per operation; false when it failed.
bool report(std::string_view how, std::string_view operation, const px::expected<px::Job, px::Error>& job) {
    if (!job) {
        std::cout << how << " " << operation << ": error: " << job.error() << "\n";
        return false;
    }
    std::cout << how << " " << operation << ": job " << job->id << " " << job->status_text;
    if (job->status == px::JobStatus::completed) {
        const std::string answer = examples::answer_of(*job);
        std::cout << ": " << answer.substr(0, 60) << (answer.size() > 60 ? "..." : "");
    }
    std::cout << "\n";
    return true;
}

bool report(std::string_view how, const px::expected<px::JobPage, px::Error>& page) {
    if (!page) {
        std::cout << how << " list: error: " << page.error() << "\n";
        return false;
    }
    std::cout << how << " list: " << page->jobs.size() << " jobs";
    if (!page->jobs.empty()) {
        std::cout << ", newest " << page->jobs.front().id << " " << page->jobs.front().status_text;
    }
    std::cout << "\n";
    return true;
}

/// The completion handlers of co_spawn get the coroutine's exception first. The library reports every
/// failure as an Error, so an exception here would be a bug (or std::bad_alloc).
void rethrow_if(const std::exception_ptr& thrown) {
    if (thrown) {
        std::rethrow_exception(thrown);
    }
}

/// run, then create -> get -> wait -> list, each started from the previous one's completion handler.
/// Everything happens on the io_context's thread, so touching the Client and `ok` needs no lock.
class CallbackChain {
  public:
    CallbackChain(px::Client& client, const Arguments& arguments) : client_(client), arguments_(arguments) {}

    void start() {
        asio::co_spawn(client_.get_executor(), client_.run(request()),
                       [this](std::exception_ptr thrown, px::expected<px::Job, px::Error> job) {
                           rethrow_if(thrown);
                           ok &= report("callback", "run", job);
                           create();
                       });
    }

    bool ok = true;

  private:
    px::ChatRequest request() const {
        return examples::question_request(arguments_.model, arguments_.question);
    }

    void create() {
        asio::co_spawn(client_.get_executor(), client_.create(request()),
                       [this](std::exception_ptr thrown, px::expected<px::Job, px::Error> job) {
                           rethrow_if(thrown);
                           ok &= report("callback", "create", job);
                           if (job) {
                               get(job->id);
                           } else {
                               list();
                           }
                       });
    }

    void get(const std::string& id) {
        asio::co_spawn(client_.get_executor(), client_.get(id),
                       [this, id](std::exception_ptr thrown, px::expected<px::Job, px::Error> job) {
                           rethrow_if(thrown);
                           ok &= report("callback", "get", job);
                           wait(id);
                       });
    }

    void wait(const std::string& id) {
        asio::co_spawn(client_.get_executor(), client_.wait(id),
                       [this](std::exception_ptr thrown, px::expected<px::Job, px::Error> job) {
                           rethrow_if(thrown);
                           ok &= report("callback", "wait", job);
                           list();
                       });
    }

    void list() {
        asio::co_spawn(client_.get_executor(), client_.list(5),
                       [this](std::exception_ptr thrown, px::expected<px::JobPage, px::Error> page) {
                           rethrow_if(thrown);
                           ok &= report("callback", page);
                       });
    }

    px::Client& client_;
    const Arguments& arguments_;
};

/// The same operations from a thread that blocks: co_spawn with use_future hands the operation to the
/// io_context's thread (where the Client lives) and returns a future of its result.
bool with_futures(asio::io_context& io, px::Client& client, const Arguments& arguments) {
    // Keeps run() from returning between operations, while the main thread prepares the next one.
    auto work = asio::make_work_guard(io);
    std::thread io_thread([&io] { io.run(); });
    const px::ChatRequest request = examples::question_request(arguments.model, arguments.question);
    bool ok = true;
    try {
        auto run = asio::co_spawn(io, client.run(request), asio::use_future).get();
        ok &= report("future", "run", run);
        auto created = asio::co_spawn(io, client.create(request), asio::use_future).get();
        ok &= report("future", "create", created);
        if (created) {
            ok &=
                report("future", "get", asio::co_spawn(io, client.get(created->id), asio::use_future).get());
            ok &= report("future", "wait",
                         asio::co_spawn(io, client.wait(created->id), asio::use_future).get());
        }
        ok &= report("future", asio::co_spawn(io, client.list(5), asio::use_future).get());
    } catch (...) {
        work.reset();
        io_thread.join();
        throw;
    }
    work.reset();
    io_thread.join();
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    const auto arguments = parse_arguments(argc, argv);
    if (!arguments) {
        std::cerr << "run 'callbacks --help' for usage\n";
        return usage_error;
    }
    asio::io_context io;
    px::Client client(io.get_executor(), arguments->connection.client_options());
    if (!examples::usable("callbacks", client)) {
        return usage_error;
    }

    CallbackChain chain(client, *arguments);
    chain.start();
    io.run();  // returns when the last callback has run and nothing else is pending

    io.restart();
    const bool futures_ok = with_futures(io, client, *arguments);
    return chain.ok && futures_ok ? all_succeeded : some_failed;
}
