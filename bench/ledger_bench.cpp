// What a ledger costs a run: records N jobs' lifecycles as a Client does (the intent, the job id
// durably, two statuses not durably, the outcome durably with a ~3 KB result) through the Ledger
// interface's awaitables, into a fresh SqliteLedger file under each LedgerDurability and into a
// MemoryLedger as the baseline. Prints one JSON object: CPU time (user+sys of this process, from
// getrusage) and wall time per job for each.
//
//   perplexity-bench-ledger [--jobs N] [--dir DIR] [--only memory|power_loss|process_crash]
//
// DIR (default: the system's temporary directory) decides what an fsync costs; it should be on the disk
// a real ledger would use. --only runs one contender, for counting its system calls:
//   strace -f -c -e trace=fsync,fdatasync perplexity-bench-ledger --only power_loss
#include <perplexity/memory_ledger.hpp>
#include <perplexity/sqlite_ledger.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <sys/resource.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace asio = boost::asio;
namespace px = perplexity;

namespace {

std::chrono::microseconds cpu_time() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const auto microseconds = [](const timeval& time) {
        return std::chrono::seconds(time.tv_sec) + std::chrono::microseconds(time.tv_usec);
    };
    return microseconds(usage.ru_utime) + microseconds(usage.ru_stime);
}

void require(bool condition, const std::string& what) {
    if (!condition) {
        throw std::runtime_error(what);
    }
}

// A run's writes, in a Client's order; the request and result are sized like real ones.
asio::awaitable<void> record_jobs(px::Ledger& ledger, std::size_t jobs) {
    const std::string request = R"({"model":"sonar-deep-research","messages":[{"role":"user","content":")" +
                                std::string(400, 'q') + "\"}]}";
    const std::string result =
        R"({"id":"job","status":"COMPLETED","response":{"content":")" + std::string(3000, 'a') + "\"}}";
    for (std::size_t job = 0; job < jobs; ++job) {
        const auto now = std::chrono::system_clock::now();
        px::LedgerIntent intent{.api = px::LedgerApi::sonar,
                                .label = "job-" + std::to_string(job),
                                .request = request,
                                .idempotency_key = "key-" + std::to_string(job),
                                .at = now};
        const auto id = co_await ledger.add(std::move(intent));
        require(id.has_value(), "add failed");
        px::LedgerUpdate created{.state = px::EntryState::running,
                                 .job_id = "job-" + std::to_string(job),
                                 .status = "CREATED",
                                 .at = now};
        require(!co_await ledger.update(*id, std::move(created)), "job id update failed");
        for (const char* status : {"IN_PROGRESS", "IN_PROGRESS"}) {
            px::LedgerUpdate polled{.status = std::string(status), .at = now, .durable = false};
            require(!co_await ledger.update(*id, std::move(polled)), "status update failed");
        }
        px::LedgerUpdate outcome{
            .state = px::EntryState::completed, .status = "COMPLETED", .result = result, .at = now};
        require(!co_await ledger.update(*id, std::move(outcome)), "outcome update failed");
    }
}

struct Measured {
    std::string ledger;
    double cpu_us_per_job = 0;
    double wall_us_per_job = 0;
    std::uintmax_t file_bytes = 0;
};

Measured measure(const std::string& name, px::Ledger& ledger, std::size_t jobs) {
    asio::io_context io;
    const auto cpu_before = cpu_time();
    const auto wall_before = std::chrono::steady_clock::now();
    std::optional<std::exception_ptr> ended;
    asio::co_spawn(io, record_jobs(ledger, jobs), [&](std::exception_ptr failure) { ended = failure; });
    io.run();
    const auto wall = std::chrono::steady_clock::now() - wall_before;
    const auto cpu = cpu_time() - cpu_before;
    if (ended && *ended) {
        std::rethrow_exception(*ended);
    }
    const double per_job = 1.0 / static_cast<double>(jobs);
    return Measured{
        .ledger = name,
        .cpu_us_per_job = static_cast<double>(cpu.count()) * per_job,
        .wall_us_per_job =
            static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(wall).count()) *
            per_job};
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t jobs = 1000;
    std::filesystem::path directory = std::filesystem::temp_directory_path();
    std::string only;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        if (flag == "--jobs") {
            jobs = std::strtoul(argv[i + 1], nullptr, 10);
        } else if (flag == "--dir") {
            directory = argv[i + 1];
        } else if (flag == "--only") {
            only = argv[i + 1];
        } else {
            std::cerr << "usage: " << argv[0]
                      << " [--jobs N] [--dir DIR] [--only memory|power_loss|process_crash]\n";
            return 2;
        }
    }
    if (jobs == 0 || argc % 2 == 0) {
        std::cerr << "usage: " << argv[0]
                  << " [--jobs N] [--dir DIR] [--only memory|power_loss|process_crash]\n";
        return 2;
    }

    std::string scratch = (directory / "perplexity-ledger-bench-XXXXXX").string();
    if (mkdtemp(scratch.data()) == nullptr) {
        std::cerr << "cannot create a directory in " << directory << '\n';
        return 1;
    }
    std::vector<Measured> results;
    try {
        if (only.empty() || only == "memory") {
            px::MemoryLedger memory;
            results.push_back(measure("memory", memory, jobs));
        }
        for (const auto& [name, durability] :
             {std::pair{"power_loss", px::LedgerDurability::power_loss},
              std::pair{"process_crash", px::LedgerDurability::process_crash}}) {
            if (!only.empty() && only != name) {
                continue;
            }
            const std::string path = scratch + "/" + name + ".sqlite";
            auto ledger = px::SqliteLedger::open(path, {.durability = durability});
            require(ledger.has_value(), ledger ? "" : ledger.error().message);
            Measured measured = measure(std::string("sqlite_") + name, **ledger, jobs);
            ledger->reset();
            measured.file_bytes = std::filesystem::file_size(path);
            results.push_back(measured);
        }
    } catch (const std::exception& failure) {
        std::cerr << "failed: " << failure.what() << '\n';
        std::filesystem::remove_all(scratch);
        return 1;
    }
    std::filesystem::remove_all(scratch);

    std::cout << "{\"jobs\": " << jobs << ", \"dir\": " << directory << ", \"results\": [";
    for (std::size_t i = 0; i < results.size(); ++i) {
        const Measured& result = results[i];
        std::cout << (i == 0 ? "" : ", ") << "{\"ledger\": \"" << result.ledger
                  << "\", \"cpu_us_per_job\": " << result.cpu_us_per_job
                  << ", \"wall_us_per_job\": " << result.wall_us_per_job
                  << ", \"file_bytes\": " << result.file_bytes << "}";
    }
    std::cout << "]}\n";
    return 0;
}
