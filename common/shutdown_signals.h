#ifndef SEMSHARE_COMMON_SHUTDOWN_SIGNALS_H_
#define SEMSHARE_COMMON_SHUTDOWN_SIGNALS_H_

#include <csignal>

namespace semshare {

// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts later (call it
// before any thread starts), so only WaitForShutdownSignal receives them and shutdown runs in
// ordinary code rather than in a signal handler.
sigset_t BlockShutdownSignals();

// Waits for one of the signals blocked above; returns its number.
int WaitForShutdownSignal(const sigset_t& signals);

}  // namespace semshare

#endif  // SEMSHARE_COMMON_SHUTDOWN_SIGNALS_H_
