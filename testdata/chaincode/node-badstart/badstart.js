'use strict';
// Fails straight away so tests can check that the launcher reports the exit
// code together with the container's last output lines. npm appends
// "--peer.address <addr>" to the command line; it is ignored.
console.log('badstart: line one');
console.error('badstart: about to fail');
process.exit(3);
