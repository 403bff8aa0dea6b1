// Preloaded into sockcat (NODE_OPTIONS=--require) by the -4/-6 tests: the name `dual.test`
// resolves to both 127.0.0.1 and ::1, as `localhost` does on many machines (not on every one:
// /etc/hosts may list 127.0.0.1 only), so the family filter is tested without touching the
// system's resolver. Every other name goes to the real lookup.
const dns = require('node:dns');
const NAME = 'dual.test';
const ALL = [
  { address: '::1', family: 6 },
  { address: '127.0.0.1', family: 4 },
];
function answer(options) {
  const family = typeof options === 'number' ? options : (options && options.family) || 0;
  const found = ALL.filter((a) => family === 0 || a.family === family);
  return found;
}
const realLookup = dns.lookup;
dns.lookup = function lookup(hostname, options, callback) {
  if (typeof options === 'function') [options, callback] = [{}, options];
  if (hostname !== NAME) return realLookup.call(this, hostname, options, callback);
  const found = answer(options);
  process.nextTick(() => {
    if (found.length === 0) return callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname }));
    if (options && options.all) return callback(null, found);
    callback(null, found[0].address, found[0].family);
  });
};
const realPromise = dns.promises.lookup;
dns.promises.lookup = async function lookup(hostname, options) {
  if (hostname !== NAME) return realPromise.call(this, hostname, options);
  const found = answer(options);
  if (found.length === 0) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname });
  return options && options.all ? found : found[0];
};
