// Linux's epoll and eventfd, which Glibc's Swift module does not export: the RESP server's
// own event loop (Sources/CairnServer/Poll) waits on them.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
// Declared by <sys/socket.h> only under _GNU_SOURCE: accepts nonblocking and close-on-exec in
// one call.
int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);
