// The connections of one Client: at most a maximum open at once, idle ones kept for reuse and closed
// after a timeout, and requests that find every connection busy served strictly in arrival order.
#pragma once

#include <perplexity/detail/connection.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace perplexity::detail {

class ConnectionPool {
  public:
    using Clock = std::chrono::steady_clock;

    /// The right to one open connection: either a connection to reuse, or an empty slot to open a new
    /// one in. Destroying a lease without giving it back closes its connection and frees the slot, so
    /// every failure path (and a coroutine frame destroyed mid-flight) returns what it held.
    class Lease {
      public:
        Lease() = default;
        Lease(ConnectionPool* pool, std::unique_ptr<Connection> connection)
            : pool_(pool), connection_(std::move(connection)), reused_(connection_ != nullptr) {}
        Lease(Lease&& other) noexcept
            : pool_(std::exchange(other.pool_, nullptr)),
              connection_(std::move(other.connection_)),
              reused_(other.reused_) {}
        Lease& operator=(Lease&&) = delete;
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        ~Lease() {
            if (pool_ != nullptr) {
                pool_->release(std::move(connection_), false);
            }
        }

        /// The connection, or null when the slot is empty and a connection must be opened.
        Connection* connection() const noexcept { return connection_.get(); }
        /// Whether the connection came from the pool (and so may have been closed by the server).
        bool reused() const noexcept { return reused_; }

        /// Puts a freshly opened connection in the slot.
        void fill(std::unique_ptr<Connection> connection) {
            connection_ = std::move(connection);
            reused_ = false;
        }
        /// Closes the connection and keeps the slot, to open another in it.
        void discard() {
            if (connection_) {
                connection_->close();
                connection_.reset();
            }
        }
        /// Returns the connection for reuse when `reusable`, else closes it; the slot is freed either way.
        void give_back(bool reusable) {
            if (auto* pool = std::exchange(pool_, nullptr)) {
                pool->release(std::move(connection_), reusable);
            }
        }

      private:
        ConnectionPool* pool_ = nullptr;
        std::unique_ptr<Connection> connection_;
        bool reused_ = false;
    };

    enum class AcquireFailure { cancelled, deadline };

    ConnectionPool(boost::asio::any_io_executor executor, std::size_t max_connections,
                   std::chrono::milliseconds idle_timeout)
        : executor_(executor),
          max_connections_(max_connections),
          idle_timeout_(idle_timeout),
          sweeper_(executor),
          alive_(std::make_shared<char>()) {}

    ConnectionPool(const ConnectionPool&) = delete;
    ConnectionPool& operator=(const ConnectionPool&) = delete;

    ~ConnectionPool() { close_idle(); }

    /// A lease at once, when no one is queued: an idle connection when there is one, else a slot for a
    /// new one when fewer than the maximum are open. Most requests get theirs here, without the
    /// coroutine frame of a wait.
    std::optional<Lease> try_acquire() {
        close_expired(Clock::now());
        if (!waiters_.empty()) {
            return std::nullopt;
        }
        if (auto connection = take_idle()) {
            return std::optional<Lease>(std::in_place, this, std::move(connection));
        }
        if (open_ < max_connections_) {
            ++open_;
            return std::optional<Lease>(std::in_place, this, nullptr);
        }
        return std::nullopt;
    }

    /// A place at the back of the queue, until a lease is given back (call when try_acquire found
    /// none). Waits until `deadline` at the latest; a cancelled wait gives up its place.
    boost::asio::awaitable<expected<Lease, AcquireFailure>> wait_for_lease(Clock::time_point deadline) {
        // The releasing side hands its connection (or its slot) straight to the first in line, so no
        // later request can take it in between.
        Waiter waiter(executor_, *this);
        waiter.timer.expires_at(deadline);
        auto [ec] = co_await waiter.timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
        if (waiter.granted) {
            waiter.granted = false;
            co_return Lease(this, std::move(waiter.connection));
        }
        co_return unexpected(ec ? AcquireFailure::cancelled : AcquireFailure::deadline);
    }

    /// Connections open now: idle, in use, or being opened.
    std::size_t open_count() const noexcept { return open_; }
    /// Connections open and unused, kept for reuse.
    std::size_t idle_count() const noexcept { return idle_.size(); }

    void close_idle() noexcept {
        for (auto& entry : idle_) {
            entry.connection->close();
        }
        open_ -= idle_.size();
        idle_.clear();
        stop_sweeping();
    }

    /// Idle connections are closed after the timeout by a timer, but only while an operation is in
    /// progress: a pending timer would keep io_context::run from returning when all the user's work
    /// is done. When the next operation starts, whatever expired meanwhile is closed first.
    void operation_started() {
        if (active_operations_++ == 0) {
            close_expired(Clock::now());
            schedule_sweep();
        }
    }
    void operation_finished() {
        if (--active_operations_ == 0) {
            stop_sweeping();
        }
    }

  private:
    struct IdleConnection {
        std::unique_ptr<Connection> connection;
        Clock::time_point since;
    };

    /// One request waiting for a connection; lives in the waiting coroutine's frame.
    struct Waiter {
        Waiter(boost::asio::any_io_executor executor, ConnectionPool& pool) : timer(executor), pool(pool) {
            pool.waiters_.push_back(this);
        }
        ~Waiter() {
            // Gone without being served (cancelled, timed out, or its frame destroyed): leave the line,
            // or pass on what was handed over and never used.
            auto& line = pool.waiters_;
            line.erase(std::remove(line.begin(), line.end(), this), line.end());
            if (granted) {
                pool.release(std::move(connection), false);
            }
        }
        Waiter(const Waiter&) = delete;
        Waiter& operator=(const Waiter&) = delete;

        boost::asio::steady_timer timer;
        ConnectionPool& pool;
        bool granted = false;
        std::unique_ptr<Connection> connection;
    };

    void release(std::unique_ptr<Connection> connection, bool reusable) {
        if (connection && !reusable) {
            connection->close();
            connection.reset();
        }
        if (!waiters_.empty()) {
            // The connection, or the slot to open one in, goes to the first in line.
            Waiter* next = waiters_.front();
            waiters_.pop_front();
            next->granted = true;
            next->connection = std::move(connection);
            next->timer.cancel();
            return;
        }
        if (connection) {
            idle_.push_back({std::move(connection), Clock::now()});
            schedule_sweep();
            return;
        }
        --open_;
    }

    std::unique_ptr<Connection> take_idle() {
        // Most recently used first: it is the one most likely still open.
        while (!idle_.empty()) {
            std::unique_ptr<Connection> connection = std::move(idle_.back().connection);
            idle_.pop_back();
            if (connection->looks_reusable()) {
                return connection;
            }
            connection->close();
            --open_;
        }
        return nullptr;
    }

    void close_expired(Clock::time_point now) {
        // Oldest first, so the expired ones are at the front.
        std::size_t expired = 0;
        while (expired < idle_.size() && now - idle_[expired].since >= idle_timeout_) {
            idle_[expired].connection->close();
            ++expired;
        }
        idle_.erase(idle_.begin(), idle_.begin() + static_cast<std::ptrdiff_t>(expired));
        open_ -= expired;
    }

    void schedule_sweep() {
        if (sweep_scheduled_ || active_operations_ == 0 || idle_.empty()) {
            return;
        }
        sweep_scheduled_ = true;
        sweeper_.expires_at(idle_.front().since + idle_timeout_);
        sweeper_.async_wait([this, alive = std::weak_ptr<char>(alive_),
                             generation = sweep_generation_](boost::system::error_code ec) {
            if (alive.expired() || generation != sweep_generation_) {
                return;
            }
            sweep_scheduled_ = false;
            if (!ec) {
                close_expired(Clock::now());
                schedule_sweep();
            }
        });
    }

    void stop_sweeping() noexcept {
        if (sweep_scheduled_) {
            sweep_scheduled_ = false;
            ++sweep_generation_;
            sweeper_.cancel();
        }
    }

    boost::asio::any_io_executor executor_;
    std::size_t max_connections_;
    std::chrono::milliseconds idle_timeout_;
    std::size_t open_ = 0;
    std::vector<IdleConnection> idle_;
    std::deque<Waiter*> waiters_;
    std::size_t active_operations_ = 0;
    boost::asio::steady_timer sweeper_;
    bool sweep_scheduled_ = false;
    unsigned sweep_generation_ = 0;
    std::shared_ptr<char> alive_;
};

}  // namespace perplexity::detail
