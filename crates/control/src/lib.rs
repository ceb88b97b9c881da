//! Control-socket protocol between rdbdadm and the rdbd daemon.
